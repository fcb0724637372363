/**
 * Recall@10 against the rescore multiplier, one line per first stage (uPlot on a canvas), with the
 * same figures in a table for screen readers and for copying.
 */
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import type { FirstStage, FirstStageQuality } from '../types';

const COLORS: Record<FirstStage, string> = { hamming: '#1f5fa8', asymmetric: '#b3461b' };

export function RecallChart({ stages, target, height = 240 }: { stages: Record<FirstStage, FirstStageQuality>; target: number; height?: number }) {
  const box = useRef<HTMLDivElement>(null);
  const names = Object.keys(stages) as FirstStage[];
  const multipliers = [...new Set(names.flatMap((n) => stages[n].recall_at_10.map((p) => p.multiplier)))].sort((a, b) => a - b);
  const key = JSON.stringify([stages, target]);
  useEffect(() => {
    const el = box.current;
    if (!el || multipliers.length === 0) return;
    const series = names.map((n) => multipliers.map((m) => stages[n].recall_at_10.find((p) => p.multiplier === m)?.recall ?? null));
    const plot = new uPlot(
      {
        width: Math.max(280, el.clientWidth || 560),
        height,
        scales: { x: { time: false, distr: 3, range: [multipliers[0]!, multipliers[multipliers.length - 1]!] }, y: { range: [Math.min(...series.flat().filter((v): v is number => v !== null), target) - 0.02, 1] } },
        axes: [{ label: 'rescore multiplier' }, { label: 'recall@10', values: (_u, ticks) => ticks.map((t) => `${(t * 100).toFixed(0)}%`) }],
        series: [
          { label: 'multiplier' },
          ...names.map((n) => ({ label: n, stroke: COLORS[n], width: 2, points: { show: true } })),
          { label: `target ${(target * 100).toFixed(1)}%`, stroke: '#555', dash: [6, 4], width: 1, points: { show: false } },
        ],
      },
      [multipliers, ...series, multipliers.map(() => target)] as uPlot.AlignedData,
      el,
    );
    return () => plot.destroy();
  }, [key, height]);
  if (multipliers.length === 0) return <p class="muted">No recall measured yet on this collection (it is measured in the background from its documents, then its queries).</p>;
  return (
    <figure class="chart">
      <div ref={box} role="img" aria-label={`recall@10 against the rescore multiplier for ${names.join(' and ')}`} />
      <details>
        <summary>Figures</summary>
        <table>
          <thead>
            <tr>
              <th scope="col">multiplier</th>
              {names.map((n) => (
                <th scope="col" key={n}>
                  {n}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {multipliers.map((m) => (
              <tr key={m}>
                <td>{m}</td>
                {names.map((n) => {
                  const p = stages[n].recall_at_10.find((q) => q.multiplier === m);
                  return <td key={n}>{p ? `${(p.recall * 100).toFixed(1)}% (${(p.low * 100).toFixed(1)}–${(p.high * 100).toFixed(1)})` : '–'}</td>;
                })}
              </tr>
            ))}
          </tbody>
        </table>
      </details>
    </figure>
  );
}
