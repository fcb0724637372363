import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { dependency, MissingDependencyError, requirePath, underCi } from '../helpers/dependencies.js';

const dir = mkdtempSync(path.join(tmpdir(), 'qembed-deps-'));
const file = path.join(dir, 'python');
writeFileSync(file, '');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('a test whose dependency is missing', () => {
  it('is skipped with a notice outside CI', () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    try {
      expect(dependency('x', 'TEST_X is not set', {})).toBe(false);
      expect(warn).toHaveBeenCalledWith(expect.stringMatching(/^NOTICE: x did not run: TEST_X is not set/));
      expect(requirePath('x', 'TEST_X', 'file', 'hint', { CI: 'false' })).toBeUndefined();
    } finally {
      warn.mockRestore();
    }
  });

  it('fails under CI, whatever CI is set to but "", "0" or "false"', () => {
    for (const CI of ['true', '1', 'yes']) {
      expect(underCi({ CI })).toBe(true);
      expect(() => dependency('x', 'TEST_X is not set', { CI })).toThrow(MissingDependencyError);
      expect(() => requirePath('x', 'TEST_X', 'file', 'hint', { CI })).toThrow(/TEST_X is not set/);
    }
    for (const CI of [undefined, '', '0', 'false', 'FALSE']) expect(underCi({ CI })).toBe(false);
  });

  it('fails everywhere when its variable names nothing, and runs when it names what it should', () => {
    expect(() => requirePath('x', 'TEST_X', 'file', 'hint', { TEST_X: path.join(dir, 'absent') })).toThrow(/names no file/);
    expect(() => requirePath('x', 'TEST_X', 'file', 'hint', { TEST_X: dir })).toThrow(/names no file/);
    expect(() => requirePath('x', 'TEST_X', 'dir', 'hint', { TEST_X: file })).toThrow(/names no folder/);
    expect(requirePath('x', 'TEST_X', 'file', 'hint', { TEST_X: file, CI: 'true' })).toBe(file);
    expect(requirePath('x', 'TEST_X', 'dir', 'hint', { TEST_X: dir, CI: 'true' })).toBe(dir);
  });
});
