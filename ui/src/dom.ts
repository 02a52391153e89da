/** The element with this id; a missing one is a bug in index.html. */
export function el<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`missing element #${id}`);
  return found as T;
}

export type Screen = "source" | "destination" | "plan" | "migrate" | "report";
export const SCREENS: Screen[] = ["source", "destination", "plan", "migrate", "report"];

/** Shows one screen and marks its step; steps up to the furthest reached stay clickable. */
export function show(screen: Screen): void {
  for (const name of SCREENS) el(`screen-${name}`).hidden = name !== screen;
  document.querySelectorAll<HTMLLIElement>(".steps li").forEach((li) => {
    if (li.dataset.step === screen) {
      li.setAttribute("aria-current", "step");
      li.removeAttribute("aria-disabled");
    } else li.removeAttribute("aria-current");
  });
}

/** Shows each message of `errors` under its field (`ids`: field name -> input id). */
export function showFieldErrors(ids: Record<string, string>, errors: Record<string, string>): void {
  for (const [field, id] of Object.entries(ids)) {
    const message = errors[field] ?? "";
    el(`${id}-error`).textContent = message;
    document.getElementById(id)?.setAttribute("aria-invalid", message ? "true" : "false");
  }
}
