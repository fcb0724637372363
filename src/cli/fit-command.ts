/**
 * `qembed fit NAME`: fit a collection's first-stage transform through a running server (the
 * server writes the sample, the worker fits it, the server takes the result and switches to it if
 * it measures better), following the fit's progress; `qembed fit NAME --switch TARGET` switches
 * the collection by hand. Both go through the server's API: fits need its job queue and its
 * in-memory first stage.
 */
import { parseArgs } from 'node:util';

export const FIT_HELP = `usage: qembed fit NAME --url URL [options]
       qembed fit NAME --url URL --switch TARGET [--policy always|if-better] [--seed N]

Fits a first-stage transform on the collection's own documents (a sample of their int8 codes):
queued for the companion worker (python -m qembed_worker work), whose progress is printed; when
the worker is done the server stores the transform with the collection and, by default, serves
it only if it keeps more of the exact top 10 than the served codes on the same queries. The
figures (the fit's held-out evaluation, the comparison, the decision) are in GET
/collections/NAME under "transform".

With --switch, switches the collection's first-stage codes instead: to a stored transform (its
fingerprint), to "rotation" (a seeded random rotation) or back to "first-dims".

options:
  --url URL           the server (e.g. http://127.0.0.1:8080) (required)
  --api-key KEY       bearer token when the server has QEMBED_API_KEY set
  --method M          qat (default: the server's QEMBED_FIT_METHOD) or itq
  --max-documents N   most documents to fit on (default: the server's QEMBED_FIT_MAX_DOCUMENTS)
  --seed N            the fit's (or the rotation's) seed
  --steps N           QAT steps (default: the worker's)
  --then P            what to do with the fitted transform: if-better (default), always, never
  --no-wait           queue the fit (or start the switch) and return at once
  --switch TARGET     switch by hand (see above) instead of fitting
  --policy P          with --switch: always (default) or if-better`;

interface Api {
  call(method: string, path: string, body?: unknown): Promise<Record<string, any>>;
}

function api(url: string, apiKey: string | undefined): Api {
  const base = url.replace(/\/+$/, '');
  return {
    async call(method, path, body) {
      const res = await fetch(`${base}${path}`, {
        method,
        headers: { ...(apiKey && { authorization: `Bearer ${apiKey}` }), ...(body !== undefined && { 'content-type': 'application/json' }) },
        ...(body !== undefined && { body: JSON.stringify(body) }),
      });
      const json = (await res.json().catch(() => undefined)) as Record<string, any> | undefined;
      if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status}${json?.error ? ` ${json.error.code}: ${json.error.message}` : ''}`);
      return json ?? {};
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const integer = (name: string, v: string | undefined, usageError: (m: string) => Error) => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) throw usageError(`${name} must be an integer, not ${JSON.stringify(v)}`);
  return n;
};

/** Waits for the collection's switch to end; prints its progress; returns the collection. */
async function followSwitch(client: Api, name: string): Promise<Record<string, any>> {
  for (;;) {
    const c = await client.call('GET', `/collections/${encodeURIComponent(name)}`);
    const s = c.transform?.switching;
    if (!s) return c;
    process.stderr.write(`\rswitching to ${s.target}: ${s.phase}, ${s.done} of ${s.total} documents${s.last_error ? ` (retrying: ${s.last_error})` : ''}   `);
    await sleep(500);
  }
}

function outcome(c: Record<string, any>): string {
  const served = c.transform.served ?? 'first-dims';
  const lines = [`\ncollection ${c.name}: first-stage codes made with ${served}`];
  for (const t of c.transform.available) {
    const cmp = t.summary?.comparison;
    if (!cmp) continue;
    const pct = (x: number) => (100 * x).toFixed(1);
    lines.push(
      `  ${t.method} ${t.fingerprint}: recall@10 at multiplier ${cmp.multiplier} on ${cmp.queries} ${cmp.basis}: ` +
        `hamming ${pct(cmp.candidate.recall.hamming)} vs ${pct(cmp.served.recall.hamming)}, asymmetric ${pct(cmp.candidate.recall.asymmetric)} vs ${pct(cmp.served.recall.asymmetric)} (${cmp.served.transform}): ${cmp.decision}`,
    );
  }
  return lines.join('\n');
}

export async function fitCommand(argv: string[], usageError: (message: string) => Error): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      url: { type: 'string' },
      'api-key': { type: 'string' },
      method: { type: 'string' },
      'max-documents': { type: 'string' },
      seed: { type: 'string' },
      steps: { type: 'string' },
      then: { type: 'string' },
      'no-wait': { type: 'boolean', default: false },
      switch: { type: 'string' },
      policy: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${FIT_HELP}\n`);
    return 0;
  }
  if (positionals.length !== 1) throw usageError('give exactly one collection NAME');
  if (!values.url) throw usageError('--url is required: fits run through a server (its job queue and its worker)');
  const name = positionals[0]!;
  const path = `/collections/${encodeURIComponent(name)}`;
  const client = api(values.url, values['api-key']);
  const seed = integer('--seed', values.seed, usageError);

  if (values.switch !== undefined) {
    const r = await client.call('POST', `${path}/transform`, { transform: values.switch, ...(seed !== undefined && { seed }), ...(values.policy && { policy: values.policy }) });
    const c = values['no-wait'] ? r.collection : await followSwitch(client, name);
    process.stdout.write(`${outcome(c)}\n`);
    return 0;
  }

  const maxDocuments = integer('--max-documents', values['max-documents'], usageError);
  const steps = integer('--steps', values.steps, usageError);
  let job = await client.call('POST', `${path}/fit`, {
    ...(values.method && { method: values.method }),
    ...(maxDocuments !== undefined && { max_documents: maxDocuments }),
    ...(seed !== undefined && { seed }),
    ...(steps !== undefined && { steps }),
    ...(values.then && { switch: values.then }),
  });
  process.stderr.write(`fit ${job.id} queued (${job.spec.method}, ${job.spec.bits.join(', ')} bits)\n`);
  if (values['no-wait']) {
    process.stdout.write(`${JSON.stringify({ fit: job.id, state: job.state })}\n`);
    return 0;
  }
  for (;;) {
    const fits = await client.call('GET', `${path}/fits`);
    job = (fits.fits as Record<string, any>[]).find((j) => j.id === job.id) ?? job;
    const where = job.state === 'queued' ? 'queued: waiting for a worker (python -m qembed_worker work)' : `${job.state}: ${job.message ?? ''}`;
    process.stderr.write(`\r${where.slice(0, 120).padEnd(120)}`);
    if (['failed', 'cancelled'].includes(job.state)) {
      process.stderr.write('\n');
      throw new Error(`fit ${job.id} ${job.state}: ${job.message}`);
    }
    if (job.state === 'succeeded' && job.imported_at) break;
    await sleep(1000);
  }
  // The server switches to the transform in the background (per --then): follow it.
  await sleep(200);
  process.stdout.write(`${outcome(await followSwitch(client, name))}\n`);
  return 0;
}
