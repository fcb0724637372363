/** One collection: its costs and recall, its transforms and fits, its documents; delete it. */
import { Fragment } from 'preact';
import { useState } from 'preact/hooks';
import { api } from '../api';
import { useAction, useApi } from '../hooks';
import type { Collection, DocumentPage, Job } from '../types';
import { RecallChart } from '../ui/chart';
import { ConfirmButton } from '../ui/confirm';
import { ErrorBox } from '../ui/error';
import { bytes, count, percent, short, when } from '../ui/format';
import { JobList } from '../ui/progress';
import { parseDocuments, parseFilter } from '../inputs';
import { activity, perDocument, transformName } from './collections';

const PAGE = 20;

function Documents({ name, onChanged }: { name: string; onChanged: () => void }) {
  const [filterText, setFilterText] = useState('');
  const [filter, setFilter] = useState<string>('');
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const [filterError, setFilterError] = useState<Error>();
  const after = cursors[cursors.length - 1];
  const query = new URLSearchParams({ limit: String(PAGE) });
  if (after) query.set('after', after);
  if (filter) query.set('filter', filter);
  const page = useApi<DocumentPage>(`/collections/${encodeURIComponent(name)}/documents?${query}`);
  const [adding, setAdding] = useState('');
  const add = useAction(async () => {
    await api('PUT', `/collections/${encodeURIComponent(name)}/documents`, { body: { documents: parseDocuments(adding) } });
    setAdding('');
    page.reload();
    onChanged();
  });
  const remove = useAction(async (id: string) => {
    await api('DELETE', `/collections/${encodeURIComponent(name)}/documents/${encodeURIComponent(id)}`);
    page.reload();
    onChanged();
  });
  const first = (cursors.length - 1) * PAGE;
  return (
    <section aria-labelledby="docs-h">
      <h2 id="docs-h">Documents</h2>
      <form
        class="inline-form"
        onSubmit={(e) => {
          e.preventDefault();
          try {
            const f = parseFilter(filterText);
            setFilterError(undefined);
            setFilter(f ? JSON.stringify(f) : '');
            setCursors([null]);
          } catch (err) {
            setFilterError(err as Error);
          }
        }}
      >
        <label>
          Metadata filter
          <input name="filter" placeholder='lang=en, year=2024  or  {"lang": "en"}' value={filterText} onInput={(e) => setFilterText(e.currentTarget.value)} size={40} />
        </label>
        <button type="submit">Apply</button>
      </form>
      <ErrorBox error={filterError} what="Reading the filter" />
      <ErrorBox error={page.error} what="Listing documents" />
      <ErrorBox error={remove.error} what="Deleting the document" />
      {page.data && (
        <>
          <p class="muted" data-testid="documents-total">
            {page.data.total === 0 ? 'No documents' : `${count(first + 1)}–${count(first + page.data.documents.length)} of ${count(page.data.total)}`}
            {filter && ' matching the filter'}
          </p>
          {page.data.documents.length > 0 && (
            <table data-testid="documents">
              <thead>
                <tr>
                  <th scope="col">id</th>
                  <th scope="col">text</th>
                  <th scope="col">metadata</th>
                  <th scope="col">updated</th>
                  <th scope="col">
                    <span class="sr-only">actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {page.data.documents.map((d) => (
                  <tr key={d.id}>
                    <td>
                      <code>{d.id}</code>
                    </td>
                    <td class="text">{d.text ?? <em>(vector only)</em>}</td>
                    <td>
                      <code>{JSON.stringify(d.metadata)}</code>
                    </td>
                    <td>{when(d.updated_at)}</td>
                    <td>
                      <ConfirmButton label="Delete" title={`Delete document ${d.id}?`} confirmLabel="Delete" danger onConfirm={() => void remove.act(d.id)}>
                        The document and its codes are removed from {name}.
                      </ConfirmButton>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          <nav class="pager" aria-label="document pages">
            <button type="button" disabled={cursors.length === 1} onClick={() => setCursors(cursors.slice(0, -1))}>
              Previous
            </button>
            <button type="button" disabled={!page.data.next} onClick={() => setCursors([...cursors, page.data!.next])}>
              Next
            </button>
          </nav>
        </>
      )}
      <form
        class="stack"
        onSubmit={(e) => {
          e.preventDefault();
          void add.act();
        }}
      >
        <label>
          Add documents: one text per line, or one JSON object per line ({'{"id": "a1", "text": "…", "metadata": {…}}'})
          <textarea name="documents" rows={4} value={adding} onInput={(e) => setAdding(e.currentTarget.value)} />
        </label>
        <div>
          <button type="submit" class="primary" disabled={add.pending || adding.trim() === ''}>
            Add documents
          </button>
        </div>
        <ErrorBox error={add.error} what="Adding documents" />
      </form>
    </section>
  );
}

function Transforms({ c, onChanged }: { c: Collection; onChanged: () => void }) {
  const path = `/collections/${encodeURIComponent(c.name)}`;
  const fits = useApi<{ fits: Job[] }>(`${path}/fits`, 2000);
  const fit = useAction(async () => {
    await api('POST', `${path}/fit`, { body: {} });
    fits.reload();
  });
  const cancel = useAction(async (id: string) => {
    await api('DELETE', `${path}/fits/${encodeURIComponent(id)}`);
    fits.reload();
  });
  const switchTo = useAction(async (transform: string) => {
    await api('POST', `${path}/transform`, { body: { transform, policy: 'always' } });
    onChanged();
  });
  const t = c.transform;
  return (
    <section aria-labelledby="transforms-h">
      <h2 id="transforms-h">First-stage codes</h2>
      <p>
        Served: <strong>{transformName(c)}</strong>
        {t?.switching && ` · switching to ${short(t.switching.target)}: ${t.switching.phase} ${count(t.switching.done)} of ${count(t.switching.total)}`}
      </p>
      <ErrorBox error={switchTo.error} what="Switching codes" />
      {t && t.available.length > 0 && (
        <table>
          <thead>
            <tr>
              <th scope="col">transform</th>
              <th scope="col">method</th>
              <th scope="col" class="num">bits</th>
              <th scope="col">created</th>
              <th scope="col">decision</th>
              <th scope="col">
                <span class="sr-only">actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {t.available.map((a) => {
              const decision = (a.summary.comparison as { decision?: string } | undefined)?.decision;
              return (
                <tr key={a.fingerprint}>
                  <td>
                    <code>{short(a.fingerprint)}</code>
                  </td>
                  <td>{a.method}</td>
                  <td class="num">{a.bits}</td>
                  <td>{when(a.created_at)}</td>
                  <td>{decision ?? '–'}</td>
                  <td>
                    {a.fingerprint !== t.served && (
                      <ConfirmButton label="Serve" title={`Serve ${a.method} ${short(a.fingerprint)}?`} confirmLabel="Switch" onConfirm={() => void switchTo.act(a.fingerprint)}>
                        Every first-stage code of {c.name} is recomputed from its int8 codes, then swapped in at once.
                      </ConfirmButton>
                    )}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      {t?.served && (
        <ConfirmButton label="Back to first dims" title="Serve first dims again?" confirmLabel="Switch" onConfirm={() => void switchTo.act('first-dims')}>
          The codes go back to the signs of the model's first dimensions.
        </ConfirmButton>
      )}
      <h3>Fits</h3>
      <p>
        <button type="button" onClick={() => void fit.act()} disabled={fit.pending}>
          Fit a transform on this collection
        </button>{' '}
        <span class="muted">run by the worker; served only if it measures better</span>
      </p>
      <ErrorBox error={fit.error} what="Starting a fit" />
      <ErrorBox error={cancel.error} what="Cancelling the fit" />
      <ErrorBox error={fits.error} what="Listing fits" />
      {fits.data && fits.data.fits.length === 0 && <p class="muted">No fits yet.</p>}
      {fits.data && fits.data.fits.length > 0 && <JobList jobs={fits.data.fits} cancelLabel="Cancel fit" onCancel={(id) => void cancel.act(id)} />}
    </section>
  );
}

export function CollectionPage({ name }: { name: string }) {
  const path = `/collections/${encodeURIComponent(name)}`;
  const one = useApi<Collection>(path, 3000);
  const remove = useAction(async () => {
    await api('DELETE', path);
    location.hash = '#/collections';
  });
  const c = one.data;
  const per = c && perDocument(c);
  return (
    <>
      <p>
        <a href="#/collections">← Collections</a>
      </p>
      <h1>{name}</h1>
      <ErrorBox error={one.error} what={`GET ${path}`} />
      <ErrorBox error={remove.error} what="Deleting the collection" />
      {c && per && (
        <>
          <div class="cards">
            <section class="card" aria-labelledby="size-h">
              <h2 id="size-h">Size</h2>
              <dl>
                <dt>Documents</dt>
                <dd data-testid="collection-documents">{count(c.documents)}</dd>
                <dt>Model</dt>
                <dd>
                  <code>{short(c.fingerprint)}</code> ({c.dimension} dims{c.model?.state === 'stale' ? ', stale' : ''})
                </dd>
                <dt>Code</dt>
                <dd>
                  {c.code_bits} bits ({c.code_bits / 8} bytes) + int8 ({c.dimension} bytes)
                </dd>
                <dt>Now</dt>
                <dd>{activity(c) ?? 'idle'}</dd>
              </dl>
            </section>
            <section class="card" aria-labelledby="bytes-h">
              <h2 id="bytes-h">Bytes per document</h2>
              <dl>
                <dt>In memory</dt>
                <dd>{bytes(per.memory)}</dd>
                <dt>On disk</dt>
                <dd>{bytes(per.disk)}</dd>
                <dt>float32 vectors alone</dt>
                <dd>{bytes(per.float32)}</dd>
              </dl>
            </section>
            {c.quality && (
              <section class="card" aria-labelledby="recall-h">
                <h2 id="recall-h">Recall@10 measured</h2>
                <dl>
                  {(['hamming', 'asymmetric'] as const).map((s) => {
                    const q = c.quality!.first_stages[s];
                    const at = q.recall_at_10.find((p) => p.multiplier === q.auto_multiplier);
                    return (
                      <Fragment key={s}>
                        <dt>{s}</dt>
                        <dd>{at ? `${percent(at.recall)} at ×${q.auto_multiplier}${q.target_met ? '' : ' (target not met)'}` : 'not measured yet'}</dd>
                      </Fragment>
                    );
                  })}
                  <dt>Target</dt>
                  <dd>{percent(c.quality.target_recall)}</dd>
                  <dt>Rests on</dt>
                  <dd>
                    {count(c.quality.measured_queries)} {c.quality.basis ?? 'measurements'}
                    {c.quality.measured_at && `, ${when(c.quality.measured_at)}`}
                  </dd>
                </dl>
              </section>
            )}
          </div>
          {c.quality && <RecallChart stages={c.quality.first_stages} target={c.quality.target_recall} />}
          <p>
            <a href={`#/search?collection=${encodeURIComponent(name)}`}>Search this collection →</a>
          </p>
          <Transforms c={c} onChanged={one.reload} />
          <Documents name={name} onChanged={one.reload} />
          <section aria-labelledby="danger-h">
            <h2 id="danger-h">Delete</h2>
            <ConfirmButton label={`Delete ${name}`} title={`Delete the collection ${name}?`} confirmLabel="Delete for good" danger onConfirm={() => void remove.act()}>
              Its {count(c.documents)} documents and their codes are deleted. This cannot be undone.
            </ConfirmButton>
          </section>
        </>
      )}
    </>
  );
}
