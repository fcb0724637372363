/**
 * The downloaded inputs of the recall corpus, each fetched once per machine with its ordinary
 * client: Debian packages with `apt-get download` (unpacked with `dpkg-deb -x`, no root needed)
 * and the gensim wheel that carries the Lee corpus with `pip download`, in the worker's corpus
 * cache where the worker's calibration may already have put it.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { readZipMember } from './zip.js';

type Log = (message: string) => void;

const run = (command: string, args: string[], cwd: string) => execFileSync(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
const failure = (e: unknown) => ((e as { stderr?: string }).stderr?.trim() || (e as Error).message).split('\n').slice(-3).join(' ');

/** The .deb of `name` in `debsDir` (the first, by file name), if one was downloaded. */
function downloadedDeb(debsDir: string, name: string): string | undefined {
  const deb = readdirSync(debsDir)
    .filter((f) => f.startsWith(`${name}_`) && f.endsWith('.deb'))
    .sort()[0];
  return deb && path.join(debsDir, deb);
}

/**
 * The Debian package `name` unpacked: its root folder under `debsDir` (downloaded and unpacked on
 * the first call). Returns the .deb's file name too, which names the package's version.
 */
export function debianPackage(name: string, debsDir: string, log: Log): { root: string; deb: string } {
  mkdirSync(debsDir, { recursive: true });
  let deb = downloadedDeb(debsDir, name);
  if (!deb) {
    log(`downloading the Debian package ${name} (apt-get download) into ${debsDir}`);
    try {
      run('apt-get', ['download', name], debsDir);
    } catch {
      // A fresh machine's package lists may be empty or stale: refresh them and try once more.
      log('apt-get download failed; running apt-get update and trying again');
      try {
        run('apt-get', ['update'], debsDir);
        run('apt-get', ['download', name], debsDir);
      } catch (e) {
        throw new Error(`could not download the Debian package ${name}: ${failure(e)}`);
      }
    }
    deb = downloadedDeb(debsDir, name);
    if (!deb) throw new Error(`apt-get download ${name} left no ${name}_*.deb in ${debsDir}`);
  }
  const root = path.join(debsDir, path.basename(deb, '.deb'));
  if (!existsSync(root)) {
    // Unpacked beside, then renamed: an interrupted unpack never passes for a complete one.
    const partial = `${root}.partial-${process.pid}`;
    rmSync(partial, { recursive: true, force: true });
    run('dpkg-deb', ['-x', deb, partial], debsDir);
    renameSync(partial, root);
  }
  return { root, deb: path.basename(deb) };
}

const GENSIM_VERSION = '4.4.0';
const LEE_MEMBER = 'gensim/test/test_data/lee_background.cor';
/** The worker pins the same file (worker/qembed_worker/data/corpus.py). */
export const LEE_SHA256 = '5d78d6dafd953bbf65797bef09a9ffb9ec430583381be705f8fd460000f370fb';

/** The worker's corpus cache: QEMBED_CORPUS_CACHE, else qembed/corpora under XDG_CACHE_HOME (~/.cache). */
function corporaCache(): string {
  return process.env.QEMBED_CORPUS_CACHE || path.join(process.env.XDG_CACHE_HOME || path.join(homedir(), '.cache'), 'qembed', 'corpora');
}

/** The bytes of lee_background.cor (300 ABC news articles, one a line), checked against its pinned hash. */
export function leeCorpus(log: Log): Buffer {
  const dir = corporaCache();
  const wheel = () => (existsSync(dir) ? readdirSync(dir).filter((f) => f.startsWith(`gensim-${GENSIM_VERSION}-`) && f.endsWith('.whl')).sort()[0] : undefined);
  if (!wheel()) {
    log(`downloading the gensim ${GENSIM_VERSION} wheel (pip download) into ${dir}`);
    mkdirSync(dir, { recursive: true });
    // The same wheel the worker downloads: any platform's carries the same text file.
    const args = ['-m', 'pip', 'download', `gensim==${GENSIM_VERSION}`, '--no-deps', '--only-binary=:all:', '--platform', 'manylinux_2_28_x86_64', '--python-version', '3.11', '--quiet', '-d', dir];
    try {
      run('python3', args, dir);
    } catch (e) {
      throw new Error(`could not download the gensim ${GENSIM_VERSION} wheel: ${failure(e)}`);
    }
  }
  const file = wheel();
  if (!file) throw new Error(`pip download left no gensim-${GENSIM_VERSION} wheel in ${dir}`);
  const data = readZipMember(path.join(dir, file), LEE_MEMBER);
  const digest = createHash('sha256').update(data).digest('hex');
  if (digest !== LEE_SHA256) throw new Error(`${LEE_MEMBER} in ${file} has sha256 ${digest}, expected ${LEE_SHA256}`);
  return data;
}
