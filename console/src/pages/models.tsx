/** Models and jobs: bundles with their figures, activation, training jobs and every collection's fits. */
import { useState } from 'preact/hooks';
import { api } from '../api';
import { useAction, useApi } from '../hooks';
import type { Collection, Job, ModelInfo } from '../types';
import { ConfirmButton } from '../ui/confirm';
import { ErrorBox } from '../ui/error';
import { short, when } from '../ui/format';
import { JobList } from '../ui/progress';

/** The evaluation record's figures per dataset, as "dataset: key value, …". */
function evaluationLines(evaluation: Record<string, unknown> | null | undefined): string[] {
  const datasets = (evaluation?.datasets ?? {}) as Record<string, Record<string, unknown>>;
  return Object.entries(datasets).map(
    ([name, figures]) =>
      `${name}: ${Object.entries(figures)
        .filter(([, v]) => typeof v === 'number')
        .map(([k, v]) => `${k} ${(v as number).toFixed(3)}`)
        .join(', ')}`,
  );
}

function Models() {
  const models = useApi<{ models: ModelInfo[] }>('/models', 10000);
  const activate = useAction(async (fingerprint: string) => {
    await api('POST', `/models/${encodeURIComponent(fingerprint)}/activate`);
    models.reload();
  });
  return (
    <section aria-labelledby="models-h">
      <h2 id="models-h">Model bundles</h2>
      <ErrorBox error={models.error} what="GET /models" />
      <ErrorBox error={activate.error} what="Activating the model" />
      {models.data && (
        <table data-testid="models">
          <thead>
            <tr>
              <th scope="col">name</th>
              <th scope="col">fingerprint</th>
              <th scope="col" class="num">dims</th>
              <th scope="col">code lengths</th>
              <th scope="col">weights</th>
              <th scope="col">evaluation</th>
              <th scope="col">state</th>
            </tr>
          </thead>
          <tbody>
            {models.data.models.map((m) => (
              <tr key={m.dir}>
                <td>{m.name}</td>
                <td>
                  <code>{short(m.fingerprint)}</code>
                </td>
                <td class="num">{m.dimension ?? '–'}</td>
                <td>{m.binary_code_bits?.join(', ') ?? '–'}</td>
                <td>{m.weights ?? '–'}</td>
                <td>
                  {evaluationLines(m.evaluation).map((l) => (
                    <div key={l} class="small">
                      {l}
                    </div>
                  ))}
                </td>
                <td>
                  {m.problem ? (
                    <span class="muted">{m.problem}</span>
                  ) : m.active ? (
                    <strong>served</strong>
                  ) : (
                    <ConfirmButton label="Activate" title={`Serve ${m.name}?`} confirmLabel="Activate" onConfirm={() => void activate.act(m.fingerprint)}>
                      New requests are served by {m.name} ({short(m.fingerprint)}); collections of the current model are re-encoded in the background.
                    </ConfirmButton>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

function TrainJobs() {
  const jobs = useApi<{ jobs: Job[] }>('/train-jobs', 2000);
  const [dataset, setDataset] = useState('');
  const [steps, setSteps] = useState('');
  const start = useAction(async () => {
    await api('POST', '/train-jobs', { body: { dataset, ...(steps && { steps: Number(steps) }) } });
    jobs.reload();
  });
  const cancel = useAction(async (id: string) => {
    await api('DELETE', `/train-jobs/${encodeURIComponent(id)}`);
    jobs.reload();
  });
  return (
    <section aria-labelledby="train-h">
      <h2 id="train-h">Training jobs</h2>
      <form
        class="inline-form"
        onSubmit={(e) => {
          e.preventDefault();
          void start.act();
        }}
      >
        <label>
          Dataset folder
          <input name="dataset" required value={dataset} onInput={(e) => setDataset(e.currentTarget.value)} placeholder="msmarco-5k" />
        </label>
        <label>
          Steps
          <input name="steps" type="number" min="1" value={steps} onInput={(e) => setSteps(e.currentTarget.value)} placeholder="default" />
        </label>
        <button type="submit" class="primary" disabled={start.pending}>
          Queue a head training job
        </button>
      </form>
      <ErrorBox error={start.error} what="Queueing the job" />
      <ErrorBox error={cancel.error} what="Cancelling the job" />
      <ErrorBox error={jobs.error} what="GET /train-jobs" />
      {jobs.data && jobs.data.jobs.length === 0 && <p class="muted">No training jobs.</p>}
      {jobs.data && (
        <JobList
          jobs={jobs.data.jobs}
          describe={(j) => `${String(j.spec.mode ?? '')} on ${String(j.spec.dataset ?? '')}, queued ${when(j.created_at)}`}
          cancelLabel="Cancel job"
          onCancel={(id) => void cancel.act(id)}
          testId="train-jobs"
        />
      )}
    </section>
  );
}

function Fits() {
  const list = useApi<{ collections: Collection[] }>('/collections', 10000);
  const names = list.data?.collections.map((c) => c.name) ?? [];
  return (
    <section aria-labelledby="fits-h">
      <h2 id="fits-h">Transform fits</h2>
      <ErrorBox error={list.error} what="GET /collections" />
      <p class="muted">{names.length === 0 ? 'No collections, so no fits.' : "Each collection's fits, newest first; start one from the collection's page."}</p>
      {names.map((n) => (
        <CollectionFits key={n} name={n} />
      ))}
    </section>
  );
}

function CollectionFits({ name }: { name: string }) {
  const path = `/collections/${encodeURIComponent(name)}/fits`;
  const fits = useApi<{ fits: Job[] }>(path, 2000);
  const cancel = useAction(async (id: string) => {
    await api('DELETE', `${path}/${encodeURIComponent(id)}`);
    fits.reload();
  });
  if (!fits.data || fits.data.fits.length === 0) return <ErrorBox error={fits.error} what={`GET ${path}`} />;
  return (
    <div>
      <h3>
        <a href={`#/collections/${encodeURIComponent(name)}`}>{name}</a>
      </h3>
      <ErrorBox error={cancel.error} what="Cancelling the fit" />
      <JobList jobs={fits.data.fits} describe={(f) => String(f.spec.method ?? '')} cancelLabel="Cancel fit" onCancel={(id) => void cancel.act(id)} />
    </div>
  );
}

export function ModelsPage() {
  return (
    <>
      <h1>Models and jobs</h1>
      <Models />
      <TrainJobs />
      <Fits />
    </>
  );
}
