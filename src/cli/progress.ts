/** A one-line progress bar on stderr: done/total, docs/s, ETA. Redrawn in place on a terminal. */
import type { IngestProgress } from './ingest-file.js';

const fmt = (n: number) => n.toLocaleString('en-US');

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

export function formatProgress(p: IngestProgress, width = 24): string {
  const fraction = p.total > 0 ? Math.min(1, p.done / p.total) : 1;
  const filled = Math.round(fraction * width);
  const rate = p.elapsedMs > 0 ? (p.done * 1000) / p.elapsedMs : 0;
  const eta = rate > 0 ? (p.total - p.done) / rate : Number.POSITIVE_INFINITY;
  const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
  const skipped = p.unchanged > 0 ? `, ${fmt(p.unchanged)} unchanged` : '';
  return `${bar} ${fmt(p.done)}/${fmt(p.total)} docs (${(fraction * 100).toFixed(1)}%)  ${fmt(Math.round(rate))} docs/s  ETA ${formatDuration(eta)}${skipped}`;
}

/** Reports progress to `stream`: in place on a terminal, otherwise a line every `everyMs`. */
export function progressPrinter(stream: NodeJS.WriteStream = process.stderr, everyMs = 5000): { update(p: IngestProgress): void; end(p: IngestProgress): void } {
  let last = -Infinity;
  const tty = stream.isTTY === true;
  return {
    update(p) {
      const now = performance.now();
      if (now - last < (tty ? 100 : everyMs)) return;
      last = now;
      stream.write(tty ? `\r${formatProgress(p)}\x1b[K` : `${formatProgress(p)}\n`);
    },
    end(p) {
      stream.write(tty ? `\r${formatProgress(p)}\x1b[K\n` : `${formatProgress(p)}\n`);
    },
  };
}
