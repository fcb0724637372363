/**
 * Which encoder to serve, chosen by measurement on the machine at hand (QEMBED_MODEL_DIR=auto).
 *
 * The same model ships as several graphs (float32, int8 weights): which one is fastest depends
 * on the processor (an int8 graph gains most where the CPU has int8 dot-product instructions),
 * so no rule measured elsewhere can decide. On first start, every candidate bundle is loaded,
 * its embeddings are compared with the float32 encoder's on fixed texts (the quality bound),
 * and the eligible ones are timed in rotated rounds through the service's own encoder; the
 * fastest at calls of 32 texts is served. The measurement and the choice are recorded in
 * QEMBED_MODELS_DIR/encoder-choice.json and reused while the processor, the thread count and
 * the candidates' fingerprints stay the same.
 *
 * On another processor the candidates are measured again, but a choice that collections are
 * already bound to is kept (its graph is exact everywhere, only its speed differs): switching
 * would leave those collections unsearchable until re-encoded. The record then says which
 * candidate measured faster; POST /models/{fingerprint}/activate switches and re-encodes.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { type Bundle, loadBundle } from '../encoder/bundle.js';
import { hasManifest, readManifest } from '../encoder/manifest.js';
import { type CpuInfo, cpuSignature, currentCpu } from '../encoder/cpu.js';
import { type Encoder, type EncoderOptions, encoderThreads } from '../encoder/encoder.js';
import { cosine } from '../quantization/similarity.js';
import { PROBE_PASSAGES, PROBE_QUERIES } from './probe-texts.js';

export const CHOICE_FILE = 'encoder-choice.json';
export const CHOICE_FORMAT = 'qembed.encoder-choice/v1';
/** The value of QEMBED_MODEL_DIR that asks for a measured choice. */
export const AUTO = 'auto';

/**
 * The quality bound a candidate must meet against the float32 encoder of the same model, on the
 * probe texts. qembed's int8 graph (7-bit activation codes, exact on every CPU) measured mean
 * 0.9985 / min 0.997 on msmarco passages; the earlier 8-bit graph on a CPU whose kernel
 * saturated measured mean 0.9952 / min 0.9893. The bound sits between: it passes an exact
 * int8 encoder and stops one whose kernels or graph are broken on this machine.
 */
export const MIN_MEAN_COSINE = 0.997;
export const MIN_COSINE = 0.99;
/** Rotated timing rounds per candidate, and the texts per round at each call size. */
const ROUNDS = 3;

export interface CandidateRecord {
  /** The bundle folder, relative to QEMBED_MODELS_DIR when inside it. */
  dir: string;
  fingerprint: string;
  weights: string;
  /** Median over rounds of texts per second through the encoder, at calls of 1 and of 32 texts. */
  texts_per_second: { calls_of_1: number; calls_of_32: number } | null;
  /** Cosine of its embeddings to the float32 encoder's over the probe texts. */
  agreement: { mean_cosine: number; min_cosine: number; texts: number; reference: string } | null;
  eligible: boolean;
  /** Why it was not eligible (missing, refused, below the quality bound). */
  problem?: string;
}

export interface ChoiceRecord {
  format: typeof CHOICE_FORMAT;
  measured_at: string;
  cpu: CpuInfo;
  cpu_signature: string;
  threads: number;
  rule: string;
  candidates: CandidateRecord[];
  /** The bundle served: the fastest eligible candidate, unless `kept` says otherwise. */
  chosen: { dir: string; fingerprint: string };
  /** Set when collections were bound to an earlier choice that was kept over a faster one. */
  kept?: { reason: string; faster: { dir: string; fingerprint: string; ratio: number } };
}

export interface ServedModel {
  dir: string;
  /** activation: a model activated at run time (POST /models/{fingerprint}/activate) was restored. */
  chosenBy: 'configuration' | 'measurement' | 'activation';
  record?: ChoiceRecord;
  /** The fingerprint served at start (set once the bundle is loaded). */
  fingerprint?: string;
}

const RULE =
  `fastest at calls of 32 texts (median of ${ROUNDS} rotated rounds) among the candidates whose embeddings ` +
  `agree with the float32 encoder on the probe texts (mean cosine >= ${MIN_MEAN_COSINE}, minimum >= ${MIN_COSINE})`;

/** Reads the recorded choice; undefined when there is none or it is unreadable. */
export function readChoice(modelsDir: string): ChoiceRecord | undefined {
  const file = path.join(modelsDir, CHOICE_FILE);
  if (!existsSync(file)) return undefined;
  try {
    const record = JSON.parse(readFileSync(file, 'utf8')) as ChoiceRecord;
    return record.format === CHOICE_FORMAT && record.chosen?.dir ? record : undefined;
  } catch {
    return undefined;
  }
}

function writeChoice(modelsDir: string, record: ChoiceRecord): void {
  const file = path.join(modelsDir, CHOICE_FILE);
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, `${JSON.stringify(record, null, 2)}\n`);
  renameSync(tmp, file);
}

/** The candidate folders named in QEMBED_ENCODER_CANDIDATES (comma-separated). */
export function candidateDirs(list: string): string[] {
  return list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

const relative = (modelsDir: string, dir: string) => {
  const rel = path.relative(path.resolve(modelsDir), path.resolve(dir));
  return rel.startsWith('..') || path.isAbsolute(rel) ? path.resolve(dir) : rel;
};

/** The fingerprint a bundle folder declares, without loading it (undefined when absent). */
function declaredFingerprint(dir: string): string | undefined {
  try {
    return readManifest(dir).fingerprint;
  } catch {
    return undefined;
  }
}

/** True when a record was measured here, for these candidates as they are now. */
export function isCurrent(record: ChoiceRecord, modelsDir: string, dirs: readonly string[], cpu: CpuInfo, threads: number): boolean {
  if (record.cpu_signature !== cpuSignature(cpu) || record.threads !== threads) return false;
  const now = dirs.map((d) => `${relative(modelsDir, d)}=${declaredFingerprint(d) ?? 'missing'}`).sort();
  const then = record.candidates.map((c) => `${c.dir}=${c.problem === 'missing' ? 'missing' : c.fingerprint}`).sort();
  return now.join(',') === then.join(',');
}

function cosines(a: Float32Array[], b: Float32Array[]): number[] {
  return a.map((x, i) => cosine(x, b[i]!));
}

async function probeEmbeddings(encoder: Encoder): Promise<Float32Array[]> {
  const docs = await encoder.embed(PROBE_PASSAGES, { inputType: 'document', truncate: true });
  const queries = await encoder.embed(PROBE_QUERIES, { inputType: 'query', truncate: true });
  return [...docs.vectors, ...queries.vectors];
}

/** Texts per second at one call size: the probe passages, cycled, for `count` texts. */
async function throughput(encoder: Encoder, callSize: number, count: number): Promise<number> {
  const texts = Array.from({ length: count }, (_, i) => PROBE_PASSAGES[i % PROBE_PASSAGES.length]!);
  const start = performance.now();
  for (let i = 0; i < texts.length; i += callSize) {
    await encoder.embed(texts.slice(i, i + callSize), { inputType: 'document', truncate: true });
  }
  return texts.length / ((performance.now() - start) / 1000);
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const round = (x: number, digits: number) => Number(x.toFixed(digits));

export interface MeasureOptions {
  modelsDir: string;
  dirs: readonly string[];
  createEncoder: (bundle: Bundle) => Promise<Encoder>;
  threads: number;
  log?: (message: string) => void;
}

/** Loads every candidate, checks its agreement with the float32 one and times the eligible ones. */
export async function measureCandidates(opts: MeasureOptions): Promise<CandidateRecord[]> {
  const log = opts.log ?? (() => {});
  const loaded: { record: CandidateRecord; encoder: Encoder }[] = [];
  const records: CandidateRecord[] = [];
  try {
    for (const dir of opts.dirs) {
      const base = { dir: relative(opts.modelsDir, dir), texts_per_second: null, agreement: null, eligible: false };
      if (!hasManifest(dir)) {
        records.push({ ...base, fingerprint: '', weights: '', problem: 'missing' });
        continue;
      }
      try {
        const bundle = await loadBundle(dir);
        const encoder = await opts.createEncoder(bundle);
        const record: CandidateRecord = { ...base, fingerprint: bundle.fingerprint, weights: bundle.manifest.weights.precision, eligible: true };
        records.push(record);
        loaded.push({ record, encoder });
      } catch (e) {
        records.push({ ...base, fingerprint: declaredFingerprint(dir) ?? '', weights: '', problem: `cannot be served: ${(e as Error).message}` });
      }
    }
    const reference = loaded.find((c) => c.record.weights === 'float32');
    if (reference) {
      const expected = await probeEmbeddings(reference.encoder);
      for (const c of loaded) {
        const cos = cosines(await probeEmbeddings(c.encoder), expected);
        const mean = cos.reduce((a, b) => a + b, 0) / cos.length;
        const min = Math.min(...cos);
        c.record.agreement = { mean_cosine: round(mean, 6), min_cosine: round(min, 6), texts: cos.length, reference: reference.record.fingerprint };
        if (mean < MIN_MEAN_COSINE || min < MIN_COSINE) {
          c.record.eligible = false;
          c.record.problem = `agrees with the float32 encoder below the bound (mean cosine ${mean.toFixed(5)}, min ${min.toFixed(5)})`;
        }
      }
    } else {
      for (const c of loaded.filter((x) => x.record.weights !== 'float32')) {
        c.record.eligible = false;
        c.record.problem = 'no float32 candidate to check its quality against';
      }
    }
    const timed = loaded.filter((c) => c.record.eligible);
    const rounds = new Map<CandidateRecord, { one: number[]; many: number[] }>(timed.map((c) => [c.record, { one: [], many: [] }]));
    for (let r = 0; r < ROUNDS && timed.length > 1; r++) {
      for (let k = 0; k < timed.length; k++) {
        const c = timed[(k + r) % timed.length]!;
        const figures = rounds.get(c.record)!;
        figures.many.push(await throughput(c.encoder, 32, 96));
        figures.one.push(await throughput(c.encoder, 1, 24));
      }
      log(`encoder choice: round ${r + 1}/${ROUNDS} measured`);
    }
    for (const [record, figures] of rounds) {
      if (figures.many.length > 0) {
        record.texts_per_second = { calls_of_1: round(median(figures.one), 1), calls_of_32: round(median(figures.many), 1) };
      }
    }
  } finally {
    await Promise.all(loaded.map((c) => c.encoder.close()));
  }
  return records;
}

/** The fastest eligible candidate (the only one when a single candidate is eligible). */
export function fastest(candidates: readonly CandidateRecord[]): CandidateRecord | undefined {
  const eligible = candidates.filter((c) => c.eligible);
  if (eligible.length <= 1) return eligible[0];
  return [...eligible].sort((a, b) => (b.texts_per_second?.calls_of_32 ?? 0) - (a.texts_per_second?.calls_of_32 ?? 0))[0];
}

export interface ResolveOptions {
  modelDir: string;
  modelsDir: string;
  candidates: string;
  threads: number;
  encoderOptions: EncoderOptions;
  createEncoder: (bundle: Bundle, options: EncoderOptions) => Promise<Encoder>;
  /** Fingerprints that collections are bound to (a recorded choice among them is kept). */
  boundFingerprints: () => ReadonlySet<string>;
  log?: (message: string, fields?: Record<string, unknown>) => void;
  /** The measurement (tests replace it to decide which candidate is faster). */
  measure?: (opts: MeasureOptions) => Promise<CandidateRecord[]>;
}

/** resolveServedModel with the service's configuration. */
export function resolveForConfig(
  config: EncoderOptions & { modelDir: string; modelsDir: string; encoderCandidates: string },
  createEncoder: ResolveOptions['createEncoder'],
  extra: Pick<ResolveOptions, 'boundFingerprints' | 'log'>,
): Promise<ServedModel> {
  return resolveServedModel({
    modelDir: config.modelDir,
    modelsDir: config.modelsDir,
    candidates: config.encoderCandidates,
    threads: encoderThreads(config),
    encoderOptions: config,
    createEncoder,
    ...extra,
  });
}

/** The bundle folder to serve: QEMBED_MODEL_DIR, or the measured choice for `auto`. */
export async function resolveServedModel(opts: ResolveOptions): Promise<ServedModel> {
  if (opts.modelDir !== AUTO) return { dir: opts.modelDir, chosenBy: 'configuration' };
  const log = opts.log ?? (() => {});
  const dirs = candidateDirs(opts.candidates).map((d) => path.resolve(d));
  if (dirs.length === 0) throw new Error('QEMBED_MODEL_DIR=auto needs at least one bundle in QEMBED_ENCODER_CANDIDATES');
  const cpu = currentCpu();
  const previous = readChoice(opts.modelsDir);
  const abs = (dir: string) => path.resolve(opts.modelsDir, dir);
  if (previous && isCurrent(previous, opts.modelsDir, dirs, cpu, opts.threads)) {
    log('serving the encoder chosen by an earlier measurement on this machine', { model: abs(previous.chosen.dir), record: path.join(opts.modelsDir, CHOICE_FILE) });
    return { dir: abs(previous.chosen.dir), chosenBy: 'measurement', record: previous };
  }
  log('measuring the candidate encoders on this machine (first start, or the processor or the candidates changed)', { candidates: dirs, cpu: cpu.model });
  const candidates = await (opts.measure ?? measureCandidates)({
    modelsDir: opts.modelsDir,
    dirs,
    threads: opts.threads,
    createEncoder: (bundle) => opts.createEncoder(bundle, opts.encoderOptions),
    log: (m) => log(m),
  });
  const best = fastest(candidates);
  if (!best) {
    const why = candidates.map((c) => `${c.dir}: ${c.problem ?? 'not eligible'}`).join('; ');
    throw new Error(`QEMBED_MODEL_DIR=auto: no candidate encoder can be served (${why})`);
  }
  const record: ChoiceRecord = {
    format: CHOICE_FORMAT,
    measured_at: new Date().toISOString(),
    cpu,
    cpu_signature: cpuSignature(cpu),
    threads: opts.threads,
    rule: RULE,
    candidates,
    chosen: { dir: best.dir, fingerprint: best.fingerprint },
  };
  const earlier = previous && candidates.find((c) => c.eligible && c.fingerprint === previous.chosen.fingerprint);
  if (earlier && earlier !== best && opts.boundFingerprints().has(earlier.fingerprint)) {
    const ratio = (best.texts_per_second?.calls_of_32 ?? 0) / (earlier.texts_per_second?.calls_of_32 ?? 1);
    record.chosen = { dir: earlier.dir, fingerprint: earlier.fingerprint };
    record.kept = {
      reason: 'collections are bound to the encoder chosen before; POST /models/{fingerprint}/activate switches and re-encodes them',
      faster: { dir: best.dir, fingerprint: best.fingerprint, ratio: round(ratio, 2) },
    };
  }
  try {
    writeChoice(opts.modelsDir, record);
  } catch (e) {
    log(`the choice could not be recorded in ${opts.modelsDir} (${(e as Error).message}); it will be measured again at the next start`);
  }
  log('encoder chosen by measurement', { model: abs(record.chosen.dir), candidates: candidates.map((c) => ({ dir: c.dir, texts_per_second: c.texts_per_second, agreement: c.agreement, problem: c.problem })) });
  return { dir: abs(record.chosen.dir), chosenBy: 'measurement', record };
}

/**
 * The bundle a command-line tool should use for QEMBED_MODEL_DIR: the folder it names, or for
 * `auto` the recorded choice (what the server serves), else the first candidate that exists.
 * Tools never measure: they must encode with what the server serves.
 */
export function modelDirForTools(config: { modelDir: string; modelsDir: string; encoderCandidates: string }): string {
  if (config.modelDir !== AUTO) return config.modelDir;
  const record = readChoice(config.modelsDir);
  if (record) return path.resolve(config.modelsDir, record.chosen.dir);
  const first = candidateDirs(config.encoderCandidates).find(hasManifest);
  if (!first) throw new Error('QEMBED_MODEL_DIR=auto: no encoder choice is recorded and no candidate bundle exists; pass a bundle folder');
  return first;
}

/**
 * How the encoder serving now was chosen: as at start (with the measurement behind an automatic
 * choice), unless an activation has replaced that model since.
 */
export function howChosen(served: ServedModel, encoder: Encoder): { chosenBy: ServedModel['chosenBy']; record?: ChoiceRecord } {
  if (served.fingerprint !== undefined && served.fingerprint !== encoder.fingerprint) return { chosenBy: 'activation' };
  return served.chosenBy === 'measurement' && served.record ? { chosenBy: 'measurement', record: served.record } : { chosenBy: served.chosenBy };
}
