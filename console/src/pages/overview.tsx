/** Overview: the model served (and how it was chosen on this CPU), health, queue, traffic. */
import { useApi } from '../hooks';
import { parseMetrics, routeFigures, total } from '../metrics';
import type { Health } from '../types';
import { ErrorBox } from '../ui/error';
import { count, ms, short, when } from '../ui/format';

export function Overview() {
  const health = useApi<Health>('/health', 5000);
  const metrics = useApi<string>('/metrics', 5000, { text: true });
  const h = health.data;
  const samples = metrics.data ? parseMetrics(metrics.data) : [];
  const routes = routeFigures(samples);
  return (
    <>
      <h1>Overview</h1>
      <ErrorBox error={health.error} what="GET /health" />
      {h && (
        <div class="cards">
          <section class="card" aria-labelledby="health-h">
            <h2 id="health-h">Health</h2>
            <p>
              <span class={`status status-${h.status}`}>{h.status}</span>
            </p>
            {h.problems.length > 0 && (
              <ul>
                {h.problems.map((p) => (
                  <li key={p}>{p}</li>
                ))}
              </ul>
            )}
            <dl>
              <dt>Queue depth</dt>
              <dd data-testid="queue-depth">{count(h.queue_depth)} texts</dd>
              <dt>Background queue</dt>
              <dd>{count(total(samples, 'qembed_background_queue_depth'))} texts</dd>
              {h.cpu && (
                <>
                  <dt>CPU</dt>
                  <dd>
                    {h.cpu.model} ({h.cpu.arch}, {h.cpu.cpus} CPUs)
                  </dd>
                </>
              )}
            </dl>
          </section>
          {h.model && (
            <section class="card" aria-labelledby="model-h">
              <h2 id="model-h">Model served</h2>
              <dl>
                <dt>Name</dt>
                <dd data-testid="model-name">{h.model.name}</dd>
                <dt>Fingerprint</dt>
                <dd>
                  <code>{h.model.fingerprint}</code>
                </dd>
                <dt>Dimension</dt>
                <dd>
                  {h.model.dimension} (max {h.model.max_tokens} tokens)
                </dd>
                <dt>Weights</dt>
                <dd>
                  {h.model.weights} on {h.model.execution_provider}
                </dd>
                <dt>Chosen by</dt>
                <dd>{h.model.chosen_by}</dd>
              </dl>
            </section>
          )}
        </div>
      )}
      {h?.model && !h.model.choice && (
        <p class="muted">
          The encoder was chosen by {h.model.chosen_by}, not measured on this CPU: start with QEMBED_MODEL_DIR=auto to have the float32 and int8 encoders measured here and the faster one served.
        </p>
      )}
      {h?.model?.choice && (
        <section aria-labelledby="choice-h">
          <h2 id="choice-h">Encoder choice on this CPU</h2>
          <p class="muted">
            Measured {when(h.model.choice.measured_at)} on {h.model.choice.threads} threads; chosen: <code>{short(h.model.choice.chosen.fingerprint)}</code> ({h.model.choice.chosen.dir}).
          </p>
          <table>
            <thead>
              <tr>
                <th scope="col">candidate</th>
                <th scope="col">weights</th>
                <th scope="col" class="num">texts/s, calls of 1</th>
                <th scope="col" class="num">texts/s, calls of 32</th>
                <th scope="col">eligible</th>
              </tr>
            </thead>
            <tbody>
              {h.model.choice.candidates.map((c) => (
                <tr key={c.dir}>
                  <td>{c.dir}</td>
                  <td>{c.weights}</td>
                  <td class="num">{c.texts_per_second ? c.texts_per_second.calls_of_1.toFixed(1) : '–'}</td>
                  <td class="num">{c.texts_per_second ? c.texts_per_second.calls_of_32.toFixed(1) : '–'}</td>
                  <td>{c.eligible ? 'yes' : `no${c.problem ? `: ${c.problem}` : ''}`}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      )}
      <section aria-labelledby="traffic-h">
        <h2 id="traffic-h">Requests since start</h2>
        <ErrorBox error={metrics.error} what="GET /metrics" />
        {metrics.data && (
          <table data-testid="routes">
            <thead>
              <tr>
                <th scope="col">route</th>
                <th scope="col" class="num">requests</th>
                <th scope="col" class="num">4xx/5xx</th>
                <th scope="col" class="num">mean</th>
                <th scope="col" class="num">p95 (bucket)</th>
              </tr>
            </thead>
            <tbody>
              {routes.map((r) => (
                <tr key={r.route}>
                  <td>
                    <code>{r.route}</code>
                  </td>
                  <td class="num">{count(r.requests)}</td>
                  <td class="num">{count(r.errors)}</td>
                  <td class="num">{ms(r.meanMs)}</td>
                  <td class="num">{r.p95Ms === null ? '> 10 s' : `≤ ${ms(r.p95Ms)}`}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
    </>
  );
}
