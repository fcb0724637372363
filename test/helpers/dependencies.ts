/**
 * The declared dependencies of tests: things a plain `npx vitest run` may lack (a PostgreSQL
 * build, the worker's Python, the SDKs' Python, the parity files, the built bundles), which
 * ./scripts/test provides through TEST_* variables. Outside CI a test whose dependency is
 * missing is skipped with a printed notice. Under CI (`CI` set, as every CI service does) it
 * fails instead: a CI run must never be green with part of the suite untested. A variable that
 * is set but names nothing fails everywhere: someone meant the test to run.
 */
import { existsSync, statSync } from 'node:fs';

/** Whether this run is a CI run: CI set to anything but '', '0' or 'false'. */
export function underCi(env: NodeJS.ProcessEnv = process.env): boolean {
  const ci = env.CI?.trim().toLowerCase();
  return ci !== undefined && ci !== '' && ci !== '0' && ci !== 'false';
}

/** Thrown for a missing dependency under CI, or for a variable that names nothing. */
export class MissingDependencyError extends Error {}

/**
 * Whether `what` can run: true when `problem` is undefined. Otherwise prints a notice and
 * returns false (outside CI), or throws (under CI), which fails the test file that asked.
 */
export function dependency(what: string, problem: string | undefined, env: NodeJS.ProcessEnv = process.env): boolean {
  if (problem === undefined) return true;
  const message = `${what} did not run: ${problem}`;
  if (underCi(env)) throw new MissingDependencyError(`${message}. Under CI a missing dependency fails the suite instead of skipping it (./scripts/test provides them all).`);
  console.warn(`NOTICE: ${message} (skipped here; under CI=true this fails)`);
  return false;
}

/**
 * The problem with the variable `name` as a path to a `kind` ('file' or 'dir'), or undefined
 * when it names one. Unset: a problem (the caller decides what to do). Set to a path that is
 * not there: thrown at once, CI or not.
 */
export function pathProblem(name: string, kind: 'file' | 'dir', hint: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const value = env[name];
  if (!value) return `${name} is not set (${hint})`;
  const found = existsSync(value) && (kind === 'dir' ? statSync(value).isDirectory() : statSync(value).isFile());
  if (!found) throw new MissingDependencyError(`${name}=${value} names no ${kind === 'dir' ? 'folder' : 'file'} (${hint})`);
  return undefined;
}

/** The path in `name` when `what` can run; undefined (after a notice) when it is skipped here. */
export function requirePath(what: string, name: string, kind: 'file' | 'dir', hint: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  return dependency(what, pathProblem(name, kind, hint, env), env) ? env[name] : undefined;
}

/** The worker's Python (TEST_WORKER_PYTHON) when `what` can run. */
export const workerPython = (what: string) =>
  requirePath(what, 'TEST_WORKER_PYTHON', 'file', 'the Python of the worker\'s environment: TEST_WORKER_PYTHON=$(scripts/worker-env); ./scripts/test sets it');

/** The Python with the official SDKs (TEST_SDK_PYTHON) when `what` can run. */
export const sdkPython = (what: string) =>
  requirePath(what, 'TEST_SDK_PYTHON', 'file', 'a Python with test/sdk/requirements.lock installed; ./scripts/test makes one and sets it');
