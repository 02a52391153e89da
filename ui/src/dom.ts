import { getState, update, type Screen } from "./store";

export type { Screen };

/** The element with this id; a missing one is a bug in index.html. */
export function el<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`missing element #${id}`);
  return found as T;
}

export const SCREENS: Screen[] = ["projects", "source", "destination", "plan", "migrate", "report"];

/**
 * Shows one screen, marks its step and moves the keyboard focus to the screen's heading (so a
 * screen reader reads where the user now is).
 */
export function show(screen: Screen): void {
  const reached = getState().reached.includes(screen) ? getState().reached : [...getState().reached, screen];
  update({ screen, reached });
  for (const name of SCREENS) el(`screen-${name}`).hidden = name !== screen;
  document.querySelectorAll<HTMLLIElement>(".steps li").forEach((li) => {
    const step = li.dataset.step as Screen;
    if (step === screen) li.setAttribute("aria-current", "step");
    else li.removeAttribute("aria-current");
    if (reached.includes(step)) li.removeAttribute("aria-disabled");
    else li.setAttribute("aria-disabled", "true");
    const button = li.querySelector("button");
    if (button) button.disabled = !reached.includes(step);
  });
  const heading = el(`screen-${screen}`).querySelector<HTMLElement>("h2");
  if (heading) {
    heading.tabIndex = -1;
    heading.focus();
  }
}

/** Says `message` once in the page's one live region. */
export function announce(message: string): void {
  const region = el("announcer");
  // Cleared first, so the same words said twice are announced twice.
  region.textContent = "";
  requestAnimationFrame(() => (region.textContent = message));
}

/** Shows each message of `errors` under its field (`ids`: field name -> input id). */
export function showFieldErrors(ids: Record<string, string>, errors: Record<string, string>): void {
  for (const [field, id] of Object.entries(ids)) {
    const message = errors[field] ?? "";
    el(`${id}-error`).textContent = message;
    document.getElementById(id)?.setAttribute("aria-invalid", message ? "true" : "false");
  }
}

/** Asks a yes/no question in the page's confirm dialog; resolves true for `yes`. */
export function confirmDialog(title: string, body: string | Node, yes: string, no = "Cancel"): Promise<boolean> {
  const dialog = el<HTMLDialogElement>("confirm-dialog");
  el("confirm-title").textContent = title;
  el("confirm-body").replaceChildren(body);
  el("confirm-yes").textContent = yes;
  el("confirm-no").textContent = no;
  return new Promise((resolve) => {
    const done = (answer: boolean) => {
      dialog.close();
      el("confirm-yes").onclick = el("confirm-no").onclick = null;
      resolve(answer);
    };
    el("confirm-yes").onclick = () => done(true);
    el("confirm-no").onclick = () => done(false);
    dialog.oncancel = () => done(false);
    dialog.showModal();
    el("confirm-no").focus();
  });
}

/** Fills a list with one item per line of text; `none` (when given) stands in for no lines. */
export function fillList(list: HTMLElement, lines: string[], none?: string): void {
  const items = lines.map((text) => {
    const li = document.createElement("li");
    li.textContent = text;
    return li;
  });
  if (items.length === 0 && none) {
    const li = document.createElement("li");
    li.className = "none";
    li.textContent = none;
    items.push(li);
  }
  list.replaceChildren(...items);
}
