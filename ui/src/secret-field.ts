// A password field backed by the keychain: the typed value goes to the backend once
// (store_secret) and is cleared; afterwards the field shows where the secret is kept, with a
// Replace button. Where no keychain exists the user may keep it for this session only.
import { invoke } from "@tauri-apps/api/core";
import type { IpcError } from "./bindings/IpcError";
import type { SecretKind } from "./bindings/SecretKind";
import type { SecretStatus } from "./bindings/SecretStatus";
import { el as byId } from "./dom";
import { secretStoreName } from "./format";
import { getState } from "./store";

/** "the Keychain" on macOS, "Windows Credential Manager", "the Secret Service keyring". */
function store(): string {
  return secretStoreName(getState().appInfo?.os);
}

export class SecretField {
  private status: SecretStatus | "unknown" = "unknown";
  private replacing = false;
  private input: HTMLInputElement;

  /**
   * `id` is the input's id; `#id-stored`, `#id-where`, `#id-replace`, `#id-session`,
   * `#id-session-text` and `#id-session-only` complete the field. `account` names the
   * keychain entry (`tenant/client` or `host/user`), or null while it is not known.
   */
  constructor(
    private id: string,
    private kind: SecretKind,
    private account: () => string | null,
    private onStored: () => void = () => {},
  ) {
    this.input = byId<HTMLInputElement>(id);
    byId(`${id}-replace`).addEventListener("click", () => {
      this.replacing = true;
      this.paint();
      this.input.focus();
    });
    byId(`${id}-session-only`).addEventListener("click", () => void this.store(true));
    byId(`${id}-forget`).addEventListener("click", () => void this.forget());
  }

  /** True when the backend holds the secret (keychain or session). */
  get stored(): boolean {
    return this.status === "stored" || this.status === "session";
  }

  /** What the user typed and has not handed over yet. */
  get typed(): string {
    return this.input.value;
  }

  private paint(): void {
    const showStored = this.stored && !this.replacing;
    this.input.hidden = showStored;
    byId(`${this.id}-stored`).hidden = !showStored;
    byId(`${this.id}-where`).textContent =
      this.status === "session" ? "Kept for this session only" : `Stored in ${store()}`;
  }

  /** Asks the backend whether a secret is stored for the current account. */
  async refresh(): Promise<void> {
    const account = this.account();
    if (!account) {
      this.status = "unknown";
      this.paint();
      return;
    }
    try {
      this.status = await invoke<SecretStatus>("secret_status", { kind: this.kind, account });
    } catch {
      this.status = "unknown";
    }
    this.replacing = false;
    this.paint();
    if (this.status === "unavailable") {
      // Said before anything is typed: where the secret would go, and the alternative.
      byId(`${this.id}-session-text`).textContent =
        `${store().replace(/^the /, "The ")} is not available on this computer, so the secret cannot be stored. ` +
        "Type it and keep it for this session only: it is forgotten when the app quits.";
      byId(`${this.id}-session`).hidden = false;
    }
  }

  /** Removes the stored secret (keychain or session); the field asks for it again. */
  async forget(): Promise<void> {
    const account = this.account();
    if (!account) return;
    try {
      this.status = await invoke<SecretStatus>("forget_secret", { kind: this.kind, account });
      this.replacing = false;
      byId(`${this.id}-error`).textContent = "";
    } catch (e) {
      byId(`${this.id}-error`).textContent = `Could not forget it: ${(e as IpcError).message ?? String(e)}`;
    }
    this.paint();
  }

  /**
   * Hands a typed value to the backend (once) and clears the field. Resolves true when a
   * secret is stored afterwards; false with the reason in `#id-error` otherwise.
   */
  async commit(): Promise<boolean> {
    if (this.input.value === "") {
      // Replace was pressed but nothing typed: the stored secret stays in use.
      this.replacing = false;
      this.paint();
      return this.stored;
    }
    return this.store(false);
  }

  private async store(sessionOnly: boolean): Promise<boolean> {
    const account = this.account();
    const value = this.input.value;
    if (!account || value === "") return false;
    const offer = byId(`${this.id}-session`);
    try {
      this.status = await invoke<SecretStatus>("store_secret", { kind: this.kind, account, value, sessionOnly });
      this.input.value = "";
      this.replacing = false;
      offer.hidden = true;
      byId(`${this.id}-error`).textContent = "";
      this.paint();
      this.onStored();
      return true;
    } catch (e) {
      const err = e as IpcError;
      if (err.code === "keychain.unavailable") {
        byId(`${this.id}-session-text`).textContent = err.message;
        offer.hidden = false;
      } else {
        byId(`${this.id}-error`).textContent = `Could not store it: ${err.message ?? String(e)}`;
      }
      return false;
    }
  }
}
