// The app's entry: wires each screen to the one store, then opens on the Projects screen (or on
// the running pass after a window reload).
import { invoke } from "@tauri-apps/api/core";
import { getCurrentWindow } from "@tauri-apps/api/window";
import { api } from "./api";
import { el, show, type Screen } from "./dom";
import { getState, update } from "./store";
import { loadProjects, wireProjects } from "./screens/projects";
import { sourceConfig, wireSource } from "./screens/source";
import { wireDestination } from "./screens/destination";
import { loadPlan, wirePlan } from "./screens/plan";
import { follow, startDemo, startPass, wireRun } from "./screens/run";

/** Asks in the page whether to stop the run and quit. */
function confirmClose(): Promise<boolean> {
  const dialog = el<HTMLDialogElement>("close-dialog");
  return new Promise((resolve) => {
    const done = (answer: boolean) => {
      dialog.close();
      el("close-cancel").onclick = el("close-confirm").onclick = null;
      resolve(answer);
    };
    el("close-cancel").onclick = () => done(false);
    el("close-confirm").onclick = () => done(true);
    dialog.oncancel = () => done(false);
    dialog.showModal();
  });
}

/** Closing the window during a run asks first; "Stop and quit" stops the run safely. */
async function guardClose(): Promise<void> {
  try {
    await getCurrentWindow().onCloseRequested(async (event) => {
      if (!getState().running) return;
      if (await confirmClose()) {
        await invoke("control_run", { action: "stop" }).catch(() => undefined);
      } else {
        event.preventDefault();
      }
    });
  } catch (e) {
    console.warn("close guard not installed", e);
  }
}

/** Steps already reached can be revisited by clicking them (or with Enter). */
function wireSteps(): void {
  document.querySelectorAll<HTMLLIElement>(".steps li").forEach((li) => {
    li.tabIndex = 0;
    const go = () => {
      // No leaving the Migrate screen while a run is going on.
      if (li.getAttribute("aria-disabled") !== "true" && !getState().running) show(li.dataset.step as Screen);
    };
    li.addEventListener("click", go);
    li.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") {
        e.preventDefault();
        go();
      }
    });
  });
}

async function start(): Promise<void> {
  try {
    const appInfo = await api.appInfo();
    update({ appInfo });
    el("app-version").textContent = `version ${appInfo.version}`;
  } catch {
    /* the version line stays empty */
  }
  await loadProjects();
  // A pass going on (the window was reloaded): shown from the backend's snapshot.
  try {
    if ((await api.runStatus()).running) await follow("Migrating");
  } catch {
    /* no run status: nothing runs */
  }
}

wireProjects(() => void startDemo());
wireSource();
wireDestination(sourceConfig, () => {
  show("plan");
  void loadPlan(false);
});
wirePlan((kind) => void startPass(kind));
wireRun();
wireSteps();
void guardClose();
show("projects");
void start();
