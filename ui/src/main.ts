// The app's entry: wires each screen to the one store, then opens on the Projects screen (or on
// the running pass after a window reload).
import { invoke } from "@tauri-apps/api/core";
import { getCurrentWindow } from "@tauri-apps/api/window";
import { listen } from "@tauri-apps/api/event";
import { api } from "./api";
import { announce, confirmDialog, el, show, type Screen } from "./dom";
import { getState, update } from "./store";
import { secretStoreName } from "./format";
import { loadProjects, wireProjects } from "./screens/projects";
import { sourceConfig, wireSource } from "./screens/source";
import { wireDestination } from "./screens/destination";
import { wirePlan } from "./screens/plan";
import { follow, startDemo, startPass, wireRun } from "./screens/run";

/**
 * Closing the window during a run asks first; "Stop and quit" stops the run safely. Whether a
 * run is going on is the backend's answer: the page learns that a pass ended only at its next
 * poll, and a close in between must not ask about a run that is over.
 */
async function guardClose(): Promise<void> {
  try {
    await getCurrentWindow().onCloseRequested(async (event) => {
      const status = await api.runStatus().catch(() => null);
      if (!(status ? status.running : getState().running)) return;
      const quit = await confirmDialog(
        "A migration is running",
        "Quit anyway? The run stops after the messages in flight, and the next pass resumes where it stopped without copying anything twice.",
        "Stop and quit",
        "Keep running",
      );
      if (quit) {
        await invoke("control_run", { action: "stop" }).catch(() => undefined);
      } else {
        event.preventDefault();
      }
    });
  } catch (e) {
    console.warn("close guard not installed", e);
  }
}

/** The backend's schedule timer started a pass: follow it as one started here. */
async function followScheduledPasses(): Promise<void> {
  try {
    await listen("scheduled-pass-started", () => {
      if (!getState().running) void follow("Scheduled incremental pass");
    });
  } catch (e) {
    console.warn("scheduled passes are not followed", e);
  }
}

/** Steps already reached can be revisited (buttons: Tab and Enter reach them). */
function wireSteps(): void {
  document.querySelectorAll<HTMLLIElement>(".steps li").forEach((li) =>
    li.querySelector("button")?.addEventListener("click", () => {
      // No leaving the Migrate screen while a run is going on.
      if (li.getAttribute("aria-disabled") !== "true" && !getState().running) show(li.dataset.step as Screen);
    }),
  );
}

/**
 * The page has one live region (#announcer): each status line marked `data-announce` is read
 * through it when its text changes, so screen readers hear one voice, not ten regions.
 */
function forwardStatusLines(): void {
  const observer = new MutationObserver((records) => {
    const changed = new Set(records.map((r) => (r.target instanceof HTMLElement ? r.target : r.target.parentElement)));
    for (const line of changed) {
      const text = line?.closest("[data-announce]")?.textContent?.trim();
      if (text) announce(text);
    }
  });
  document.querySelectorAll("[data-announce]").forEach((line) => observer.observe(line, { childList: true, characterData: true, subtree: true }));
}

async function start(): Promise<void> {
  try {
    const appInfo = await api.appInfo();
    update({ appInfo });
    el("app-version").textContent = `version ${appInfo.version}`;
    el("destination-lead").textContent = `Passwords go to ${secretStoreName(appInfo.os)}; the other settings are saved in the project.`;
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
// Saved destination settings and rules change the plan: it is counted again (from the cache).
wireDestination(sourceConfig, () => {
  update({ plan: null });
  show("plan");
});
wirePlan((kind) => void startPass(kind));
wireRun();
wireSteps();
forwardStatusLines();
void guardClose();
void followScheduledPasses();
show("projects");
void start();
