// The mailbox table of the Plan and Migrate screens: sortable columns and windowed rendering
// (only the rows in view, plus a few, are in the DOM), so 10,000 mailboxes scroll smoothly.

export interface Column<T> {
  /** Stable name, used in data-col and for the sort state. */
  key: string;
  label: string;
  /** The cell's content. */
  cell: (row: T) => string | Node;
  /** Compares two rows for this column; absent: the column does not sort. */
  compare?: (a: T, b: T) => number;
  numeric?: boolean;
}

/** Rows of this height (px, as in style.css `.mailbox-table td`). */
const ROW_HEIGHT = 34;
/** Rows rendered above and below the visible ones. */
const OVERSCAN = 8;

export class MailboxTable<T> {
  private rows: T[] = [];
  private sorted: T[] = [];
  private sortKey: string | null = null;
  private ascending = true;
  private body: HTMLTableSectionElement;
  private headRow: HTMLTableRowElement;
  private painted = "";

  /**
   * Builds the table inside `scroller` (a fixed-height element that scrolls). `key` names a row
   * (its `data-key`).
   */
  constructor(
    private scroller: HTMLElement,
    private columns: Column<T>[],
    private key: (row: T) => string,
    label: string,
  ) {
    const table = document.createElement("table");
    table.className = "users mailbox-table";
    table.setAttribute("aria-label", label);
    const head = table.createTHead();
    this.headRow = head.insertRow();
    for (const c of columns) {
      const th = document.createElement("th");
      th.scope = "col";
      th.dataset.col = c.key;
      if (c.numeric) th.className = "num";
      if (c.compare) {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "sort";
        button.textContent = c.label;
        button.addEventListener("click", () => this.sortBy(c.key));
        th.append(button);
      } else th.textContent = c.label;
      this.headRow.append(th);
    }
    this.body = table.createTBody();
    scroller.replaceChildren(table);
    scroller.addEventListener("scroll", () => this.paint());
    new ResizeObserver(() => this.paint()).observe(scroller);
  }

  /** Replaces the rows (already searched and filtered), keeping the sort order. */
  setRows(rows: T[]): void {
    this.rows = rows;
    this.resort();
  }

  /** Rows in their shown order (for export). */
  shownRows(): readonly T[] {
    return this.sorted;
  }

  /** Sorts by a column; the same column again reverses the order. */
  sortBy(key: string): void {
    this.ascending = this.sortKey === key ? !this.ascending : true;
    this.sortKey = key;
    for (const th of Array.from(this.headRow.cells)) {
      if (th.dataset.col === key) th.setAttribute("aria-sort", this.ascending ? "ascending" : "descending");
      else th.removeAttribute("aria-sort");
    }
    this.resort();
  }

  private resort(): void {
    const column = this.columns.find((c) => c.key === this.sortKey);
    const compare = column?.compare;
    this.sorted = compare ? [...this.rows].sort((a, b) => (this.ascending ? compare(a, b) : compare(b, a))) : this.rows;
    this.painted = "";
    this.paint();
  }

  /** Renders the rows in view between two spacer rows that keep the scroll height. */
  paint(): void {
    const height = this.scroller.clientHeight || 400;
    // After the rows shrank the browser clamps scrollTop only later: clamp it here.
    const top = Math.max(0, Math.min(this.scroller.scrollTop, this.sorted.length * ROW_HEIGHT - height));
    const first = Math.max(0, Math.floor(top / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(this.sorted.length, Math.ceil((top + height) / ROW_HEIGHT) + OVERSCAN);
    const window = `${first}:${last}:${this.sorted.length}`;
    if (window === this.painted) return;
    this.painted = window;
    const spacer = (rows: number) => {
      const tr = document.createElement("tr");
      tr.className = "spacer";
      tr.setAttribute("aria-hidden", "true");
      tr.style.height = `${rows * ROW_HEIGHT}px`;
      return tr;
    };
    const trs: HTMLTableRowElement[] = [spacer(first)];
    for (let i = first; i < last; i++) {
      const row = this.sorted[i];
      const tr = document.createElement("tr");
      tr.dataset.key = this.key(row);
      tr.setAttribute("aria-rowindex", String(i + 2));
      for (const c of this.columns) {
        const td = document.createElement("td");
        td.dataset.col = c.key;
        if (c.numeric) td.className = "num";
        const content = c.cell(row);
        // Long text is cut with an ellipsis: the whole of it on hover.
        if (typeof content === "string") td.title = content;
        td.append(content);
        tr.append(td);
      }
      trs.push(tr);
    }
    trs.push(spacer(this.sorted.length - last));
    this.body.replaceChildren(...trs);
    this.body.parentElement?.setAttribute("aria-rowcount", String(this.sorted.length + 1));
  }

  /** Renders again (the rows' content changed, not their set). */
  refresh(): void {
    this.painted = "";
    this.paint();
  }
}
