/** The README's configuration table lives between two markers and is generated from the config schema. */
import { configTableMarkdown } from './config.js';

const START = /<!-- config-table:start[^>]*-->/;
const END = '<!-- config-table:end -->';

export function readmeWithConfigTable(readme: string): string {
  const start = START.exec(readme);
  const end = readme.indexOf(END);
  if (!start || end < 0) throw new Error('README.md lacks the config-table markers');
  const head = readme.slice(0, start.index + start[0].length);
  return `${head}\n${configTableMarkdown()}\n${readme.slice(end)}`;
}
