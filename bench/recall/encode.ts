/**
 * Encoding a whole text list with the served encoder in-process, for the recall corpus: calls of
 * CALL_SIZE texts taken in order of length (similar lengths batch with little padding; a text
 * embeds the same in any batch), two calls in flight so that the next call's tokenization overlaps
 * the model's run, and a progress line every PROGRESS_EVERY texts with the rate and the time left
 * (estimated from the characters left: the texts come shortest first, so a rate in texts would
 * promise far too early an end).
 */
import type { InputType } from '../../src/encoder/bundle.js';
import type { Encoder } from '../../src/encoder/encoder.js';

const CALL_SIZE = 64;
const IN_FLIGHT = 2;
const PROGRESS_EVERY = 10_000;

const minutes = (seconds: number) => (seconds >= 90 ? `${(seconds / 60).toFixed(1)} min` : `${seconds.toFixed(0)} s`);

/** Row-major texts.length × dimension embeddings of `texts`, row i for texts[i]. */
export async function encodeTexts(encoder: Encoder, texts: readonly string[], inputType: InputType, label: string, log: (m: string) => void): Promise<{ vectors: Float32Array; seconds: number }> {
  const d = encoder.dimension;
  const vectors = new Float32Array(texts.length * d);
  const order = texts.map((_, i) => i).sort((a, b) => texts[a]!.length - texts[b]!.length);
  const totalChars = texts.reduce((sum, t) => sum + t.length, 0);
  const start = performance.now();
  let doneChars = 0;
  let done = 0;
  let reported = 0;
  const call = async (from: number) => {
    const rows = order.slice(from, from + CALL_SIZE);
    const { vectors: out } = await encoder.embed(
      rows.map((i) => texts[i]!),
      { inputType, truncate: true },
    );
    rows.forEach((row, k) => vectors.set(out[k]!, row * d));
    done += rows.length;
    for (const i of rows) doneChars += texts[i]!.length;
    if (done - reported >= PROGRESS_EVERY || done === texts.length) {
      reported = done;
      const seconds = (performance.now() - start) / 1000;
      const left = done === texts.length ? `took ${minutes(seconds)}` : `about ${minutes(((totalChars - doneChars) / doneChars) * seconds)} left`;
      log(`encoded ${done.toLocaleString('en-US')}/${texts.length.toLocaleString('en-US')} ${label}, ${(done / seconds).toFixed(1)} texts/s, ${left}`);
    }
  };
  const pending = new Set<Promise<void>>();
  for (let from = 0; from < order.length; from += CALL_SIZE) {
    const p = call(from).finally(() => pending.delete(p));
    pending.add(p);
    if (pending.size >= IN_FLIGHT) await Promise.race(pending);
  }
  await Promise.all(pending);
  return { vectors, seconds: (performance.now() - start) / 1000 };
}
