import { describe, expect, it } from 'vitest';
import { sectionOf, withSection } from '../../scripts/doc-sections.js';

describe('doc sections', () => {
  it('appends a section a page lacks, then replaces only it', () => {
    const page = withSection('# Page\n\ntext\n', 'part', 'first $& body');
    expect(page.startsWith('# Page\n\ntext\n\n<!-- section part:')).toBe(true);
    expect(sectionOf(page, 'part')).toContain('first $& body');
    const again = withSection(`${page}\n## After\n`, 'part', 'second');
    expect(sectionOf(again, 'part')).toContain('second');
    expect(again).not.toContain('first');
    expect(again.endsWith('## After\n')).toBe(true);
    expect(sectionOf('# none', 'part')).toBeUndefined();
  });
});
