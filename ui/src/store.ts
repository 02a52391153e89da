// The one typed store: every screen renders from this state and changes it only through
// `update`, which then tells each subscriber.
import type { AppInfo, Project, ProjectSummary, Plan, RunSnapshot, RunDetails } from "./api";

export type Screen = "projects" | "source" | "destination" | "plan" | "migrate" | "report";

export interface State {
  screen: Screen;
  /** The furthest step reached in this project: steps up to it are clickable. */
  reached: Screen[];
  appInfo: AppInfo | null;
  projects: ProjectSummary[];
  /** The open project, as the backend last returned it. */
  project: Project | null;
  plan: Plan | null;
  /** True while `plan_migration` counts. */
  counting: boolean;
  snapshot: RunSnapshot | null;
  /** True while a pass (or the demo) runs. */
  running: boolean;
  details: RunDetails | null;
}

type Listener = (state: State, previous: State) => void;

let state: State = {
  screen: "projects",
  reached: ["projects"],
  appInfo: null,
  projects: [],
  project: null,
  plan: null,
  counting: false,
  snapshot: null,
  running: false,
  details: null,
};
const listeners: Listener[] = [];

export function getState(): State {
  return state;
}

/** Applies `patch` and tells every subscriber (with the state before). */
export function update(patch: Partial<State>): void {
  const previous = state;
  state = { ...state, ...patch };
  for (const l of listeners) l(state, previous);
}

export function subscribe(listener: Listener): void {
  listeners.push(listener);
}
