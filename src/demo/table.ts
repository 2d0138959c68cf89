/**
 * Demo output: plain-text tables with aligned columns. Colour is applied after padding, so escape
 * codes never skew the alignment, and only when the caller says the terminal wants it.
 */

export type Paint = (text: string, row: number, col: number) => string;

export function formatTable(headers: readonly string[], rows: readonly (readonly string[])[], paint?: Paint): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[], row: number) =>
    cells
      .map((c, i) => {
        // The last column is not padded: no trailing spaces.
        const padded = i === cells.length - 1 ? c : c.padEnd(widths[i]!);
        return row >= 0 && paint ? paint(padded, row, i) : padded;
      })
      .join('  ')
      .trimEnd();
  return [line(headers, -1), ...rows.map((r, i) => line(r, i))].join('\n') + '\n';
}

/** ANSI colours for a terminal that wants them (a TTY, and NO_COLOR unset); identity otherwise. */
export function colours(enabled: boolean): { green: (s: string) => string; red: (s: string) => string; bold: (s: string) => string; dim: (s: string) => string } {
  const wrap = (code: string) => (s: string) => (enabled ? `\u001b[${code}m${s}\u001b[0m` : s);
  return { green: wrap('32'), red: wrap('31'), bold: wrap('1'), dim: wrap('2') };
}
