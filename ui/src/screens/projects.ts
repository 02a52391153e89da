// The Projects screen: the saved migrations, a new one, the demo apart; opening one fills the
// other screens from it.
import { api, errorText, type IpcError, type Project, type ProjectSummary } from "../api";
import { announce, confirmDialog, el, show } from "../dom";
import { formatTime } from "../format";
import { getState, update } from "../store";

/** A pass in a few words: "full pass finished on 06/12/2026, 14:03". */
export function describePass(p: ProjectSummary["lastPass"]): string {
  if (!p) return "no pass yet";
  const when = formatTime(p.finishedAt ?? p.startedAt);
  const state = p.state === "running" ? "running since" : `${p.state} on`;
  return `${p.kind} pass ${state} ${when}`;
}

function projectItem(p: ProjectSummary): HTMLLIElement {
  const li = document.createElement("li");
  li.dataset.project = p.id;
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = p.name;
  const meta = document.createElement("span");
  meta.className = "meta";
  meta.textContent = `${describePass(p.lastPass)} · saved ${formatTime(p.updatedAt)}`;
  const open = document.createElement("button");
  open.type = "button";
  open.className = "primary";
  open.textContent = "Open";
  open.setAttribute("aria-label", `Open ${p.name}`);
  open.addEventListener("click", () => void openProject(p.id));
  li.append(name, meta, open);
  if (!p.demo) {
    const remove = document.createElement("button");
    remove.type = "button";
    remove.textContent = "Delete…";
    remove.setAttribute("aria-label", `Delete ${p.name}`);
    remove.addEventListener("click", () => void deleteProject(p));
    li.append(remove);
  }
  return li;
}

function renderProjects(projects: ProjectSummary[]): void {
  const mine = projects.filter((p) => !p.demo);
  const list = el("project-list");
  list.replaceChildren(...mine.map(projectItem));
  if (mine.length === 0) {
    const none = document.createElement("li");
    none.className = "none";
    none.textContent = "No project yet: name your first migration below.";
    list.append(none);
  }
  el("demo-list").replaceChildren(...projects.filter((p) => p.demo).map(projectItem));
}

export async function loadProjects(): Promise<void> {
  try {
    const projects = await api.listProjects();
    update({ projects });
    renderProjects(projects);
  } catch (e) {
    el("projects-status").textContent = `The projects could not be read: ${errorText(e)}`;
  }
}

/** Makes `project` the open one: every screen fills from it; then the Source screen shows. */
export function projectOpened(project: Project, screen: "source" | null = "source"): void {
  // The same project again (its pass history grew): the plan counted for it stays.
  const same = getState().project?.id === project.id;
  update({ project, plan: same ? getState().plan : null, reached: ["projects", "source", "destination", "plan"] });
  if (screen) show(screen);
  announce(`Project ${project.name} is open.`);
}

async function openProject(id: string): Promise<void> {
  try {
    projectOpened(await api.openProject(id));
  } catch (e) {
    el("projects-status").textContent = `The project could not be opened: ${errorText(e)}`;
  }
}

async function deleteProject(p: ProjectSummary): Promise<void> {
  const sure = await confirmDialog(
    `Delete “${p.name}”?`,
    "Its settings and pass history are removed. The data already migrated, the reports and the stored secrets stay.",
    "Delete",
  );
  if (!sure) return;
  try {
    await api.deleteProject(p.id);
    if (getState().project?.id === p.id) update({ project: null });
    announce(`Project ${p.name} deleted.`);
    await loadProjects();
  } catch (e) {
    el("projects-status").textContent = `The project could not be deleted: ${errorText(e)}`;
  }
}

/**
 * Saves the open project changed by `change`; resolves the saved project, or the backend's
 * error (with its field errors) without changing the store.
 */
export async function saveProject(change: (p: Project) => Project): Promise<Project | IpcError> {
  const current = getState().project;
  if (!current) return { code: "project.none", message: "No project is open." };
  try {
    const saved = await api.saveProject(change(current));
    update({ project: saved });
    return saved;
  } catch (e) {
    return e as IpcError;
  }
}

/** The backend's field errors by the field's last name in camelCase (`source.tenant_id` -> tenantId). */
export function fieldErrors(e: IpcError): Record<string, string> {
  const errors: Record<string, string> = {};
  for (const f of e.fields ?? []) {
    const name = f.field.split(".").pop() ?? f.field;
    errors[name.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase())] = f.message;
  }
  return errors;
}

export function isError(x: Project | IpcError): x is IpcError {
  return (x as Project).id === undefined;
}

export function wireProjects(startDemo: () => void): void {
  el<HTMLFormElement>("new-project-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = el<HTMLInputElement>("new-project-name").value.trim();
    el("new-project-name-error").textContent = name ? "" : "Name the project, such as “Contoso to IceWarp”.";
    el("new-project-name").setAttribute("aria-invalid", name ? "false" : "true");
    if (!name) return;
    try {
      const project = await api.createProject(name);
      el<HTMLInputElement>("new-project-name").value = "";
      void loadProjects();
      projectOpened(project);
    } catch (e) {
      el("new-project-name-error").textContent = errorText(e);
    }
  });
  el("try-demo").addEventListener("click", startDemo);
}
