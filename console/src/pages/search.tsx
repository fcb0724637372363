/**
 * Search playground: the served pipeline (first stage, then int8 rescoring) next to the exact int8
 * ranking it approximates, with the hits both share marked, the time of each stage, and the
 * collection's measured recall against the multiplier.
 */
import { useState } from 'preact/hooks';
import { api } from '../api';
import { useAction, useApi } from '../hooks';
import type { Collection, FirstStage, SearchAnswer } from '../types';
import { RecallChart } from '../ui/chart';
import { ErrorBox } from '../ui/error';
import { count, ms, percent } from '../ui/format';
import { parseFilter } from '../inputs';

function Hits({ title, answer, other, id }: { title: string; answer: SearchAnswer; other: Set<string>; id: string }) {
  const s = answer.stats;
  return (
    <section class="hits" aria-labelledby={`${id}-h`} data-testid={id}>
      <h2 id={`${id}-h`}>{title}</h2>
      <p class="muted">
        encode {ms(s.encode_ms)} · filter {ms(s.filter_ms)} · first stage {ms(s.first_stage_ms)} · rescore {ms(s.rescore_ms)} · {count(s.documents_scanned)} scanned, {count(s.candidates_rescored)} rescored
      </p>
      <ol>
        {answer.hits.map((h) => {
          const shared = other.has(h.id);
          return (
            <li key={h.id} class={shared ? 'shared' : 'only'} data-shared={shared ? 'yes' : 'no'}>
              <span class="mark" aria-hidden="true">
                {shared ? '●' : '○'}
              </span>
              <span class="sr-only">{shared ? 'in both rankings: ' : 'only in this ranking: '}</span>
              <code>{h.id}</code> <span class="score">{h.score.toFixed(4)}</span>
              <div class="text">{h.text ?? <em>(vector only)</em>}</div>
            </li>
          );
        })}
      </ol>
    </section>
  );
}

export function SearchPage({ initial }: { initial: string | null }) {
  const list = useApi<{ collections: Collection[] }>('/collections');
  const [collection, setCollection] = useState(initial ?? '');
  const [query, setQuery] = useState('');
  const [topK, setTopK] = useState('10');
  const [multiplier, setMultiplier] = useState('auto');
  const [stage, setStage] = useState<FirstStage>('hamming');
  const [filterText, setFilterText] = useState('');
  const [result, setResult] = useState<{ served: SearchAnswer; exact: SearchAnswer }>();
  const chosen = collection || list.data?.collections[0]?.name || '';
  const detail = useApi<Collection>(chosen ? `/collections/${encodeURIComponent(chosen)}` : null, 10000);
  const run = useAction(async () => {
    const filter = parseFilter(filterText);
    const body = { collection: chosen, query, top_k: Number(topK), first_stage: stage, ...(filter && { filter }) };
    const served = await api<SearchAnswer>('POST', '/search', { body: { ...body, rescore_multiplier: multiplier === 'auto' ? 'auto' : Number(multiplier) } });
    const exact = await api<SearchAnswer>('POST', '/search', { body: { ...body, rescore: 'exact' } });
    setResult({ served, exact });
  });
  const servedIds = new Set(result?.served.hits.map((h) => h.id));
  const exactIds = new Set(result?.exact.hits.map((h) => h.id));
  const overlap = result ? result.served.hits.filter((h) => exactIds.has(h.id)).length : 0;
  const r = result?.served.recall;
  return (
    <>
      <h1>Search playground</h1>
      <ErrorBox error={list.error} what="GET /collections" />
      <form
        class="search-form"
        onSubmit={(e) => {
          e.preventDefault();
          void run.act();
        }}
      >
        <label>
          Collection
          <select name="collection" value={chosen} onChange={(e) => setCollection(e.currentTarget.value)}>
            {list.data?.collections.map((c) => (
              <option key={c.name} value={c.name}>
                {c.name} ({count(c.documents)} documents)
              </option>
            ))}
          </select>
        </label>
        <label class="wide">
          Query
          <input name="query" required value={query} onInput={(e) => setQuery(e.currentTarget.value)} />
        </label>
        <label>
          top_k
          <input name="top_k" type="number" min="1" max="1000" value={topK} onInput={(e) => setTopK(e.currentTarget.value)} />
        </label>
        <label>
          Rescore multiplier
          <select name="rescore_multiplier" value={multiplier} onChange={(e) => setMultiplier(e.currentTarget.value)}>
            {['auto', '1', '2', '4', '8', '16', '32', '64'].map((m) => (
              <option key={m} value={m}>
                {m}
              </option>
            ))}
          </select>
        </label>
        <label>
          First stage
          <select name="first_stage" value={stage} onChange={(e) => setStage(e.currentTarget.value as FirstStage)}>
            <option value="hamming">hamming</option>
            <option value="asymmetric">asymmetric</option>
          </select>
        </label>
        <label class="wide">
          Metadata filter
          <input name="filter" placeholder="lang=en" value={filterText} onInput={(e) => setFilterText(e.currentTarget.value)} />
        </label>
        <div>
          <button type="submit" class="primary" disabled={run.pending || !chosen}>
            Search
          </button>
        </div>
      </form>
      <ErrorBox error={run.error} what="Search" />
      {result && r && (
        <>
          <p data-testid="overlap" class="overlap">
            <strong>
              {overlap} of {result.exact.hits.length}
            </strong>{' '}
            of the exact int8 top {result.exact.hits.length} found by the served pipeline (multiplier ×{r.multiplier}, {r.chosen_by}
            {r.estimated_recall_at_10 !== null && `; estimated recall@10 ${percent(r.estimated_recall_at_10)} on ${count(r.measured_queries)} ${r.basis}`}).
          </p>
          <div class="columns">
            <Hits title="Served: first stage + int8 rescoring" answer={result.served} other={exactIds} id="served-hits" />
            <Hits title="Exact: every document by its int8 code" answer={result.exact} other={servedIds} id="exact-hits" />
          </div>
        </>
      )}
      {detail.data?.quality && (
        <section aria-labelledby="chart-h">
          <h2 id="chart-h">Recall@10 against the multiplier on {chosen}</h2>
          <p class="muted">
            Measured on {count(detail.data.quality.measured_queries)} {detail.data.quality.basis ?? 'measurements'}; auto picks ×{detail.data.quality.first_stages[stage].auto_multiplier} for {stage}
            {detail.data.quality.first_stages[stage].target_met
              ? '.'
              : `: no multiplier's lower bound reaches the ${percent(detail.data.quality.target_recall)} target on these measurements, so auto takes its largest (more measurements narrow the bound).`}
          </p>
          <RecallChart stages={detail.data.quality.first_stages} target={detail.data.quality.target_recall} />
        </section>
      )}
    </>
  );
}
