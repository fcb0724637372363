/** Encode playground: texts in, every precision out, with the similarities each keeps. */
import { useState } from 'preact/hooks';
import { api } from '../api';
import { useAction } from '../hooks';
import { isBits, fromBase64, similarityMatrix } from '../similarity';
import { PRECISIONS, type Precision } from '../types';
import { ErrorBox } from '../ui/error';
import { HeatMap } from '../ui/heatmap';

interface Encoded {
  precision: Precision;
  dimension: number;
  bytes_per_vector: number;
  embeddings: string[];
}

const EXAMPLE = 'How do rivers form?\nRivers begin where rain and melting snow gather and flow downhill.\nThe bakery opens at seven every morning.';

export function EncodePage() {
  const [texts, setTexts] = useState(EXAMPLE);
  const [inputType, setInputType] = useState<'document' | 'query'>('document');
  const [results, setResults] = useState<Encoded[]>();
  const lines = texts
    .split('\n')
    .map((t) => t.trim())
    .filter((t) => t !== '');
  const run = useAction(async () => {
    const out: Encoded[] = [];
    for (const precision of PRECISIONS) {
      out.push(await api<Encoded>('POST', '/encode', { body: { inputs: lines, input_type: inputType, precision, encoding: 'base64' } }));
    }
    setResults(out);
  });
  const labels = lines.map((_t, i) => `#${i + 1}`);
  return (
    <>
      <h1>Encode playground</h1>
      <form
        class="stack"
        onSubmit={(e) => {
          e.preventDefault();
          void run.act();
        }}
      >
        <label>
          Texts, one per line (up to 8 are compared)
          <textarea name="texts" rows={5} value={texts} onInput={(e) => setTexts(e.currentTarget.value)} />
        </label>
        <label>
          Encode as
          <select name="input_type" value={inputType} onChange={(e) => setInputType(e.currentTarget.value as 'document' | 'query')}>
            <option value="document">documents</option>
            <option value="query">queries</option>
          </select>
        </label>
        <div>
          <button type="submit" class="primary" disabled={run.pending || lines.length === 0}>
            Encode at every precision
          </button>
        </div>
      </form>
      <ErrorBox error={run.error} what="Encoding" />
      {results && (
        <>
          <ol class="legend">
            {lines.map((t, i) => (
              <li key={i}>
                <strong>#{i + 1}</strong> {t}
              </li>
            ))}
          </ol>
          <div class="precisions">
            {results.map((r) => {
              const vectors = r.embeddings.slice(0, 8).map(fromBase64);
              const bits = isBits(r.precision);
              return (
                <section class="card precision" key={r.precision} data-testid={`precision-${r.precision}`} aria-labelledby={`p-${r.precision}`}>
                  <h2 id={`p-${r.precision}`}>{r.precision}</h2>
                  <p>
                    <strong>{r.bytes_per_vector} bytes</strong> per vector · {r.dimension} dimensions
                  </p>
                  <HeatMap
                    labels={labels.slice(0, 8)}
                    values={similarityMatrix(vectors, r.precision)}
                    min={bits ? r.dimension / 2 : 0}
                    max={bits ? 0 : 1}
                    caption={bits ? 'Hamming distance (bits that differ)' : r.precision === 'uint8' ? 'cosine (values centred on 128)' : 'cosine'}
                    format={(v) => (bits ? String(v) : v.toFixed(3))}
                  />
                  <details>
                    <summary>base64</summary>
                    {r.embeddings.map((e, i) => (
                      <p key={i} class="b64">
                        <strong>#{i + 1}</strong> <code>{e}</code>
                      </p>
                    ))}
                  </details>
                </section>
              );
            })}
          </div>
        </>
      )}
    </>
  );
}
