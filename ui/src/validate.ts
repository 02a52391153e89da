// Form handling only: the fields' rules are the core's (`validate_source`,
// `validate_destination`, `save_project` answer with its field errors). What stays here is what
// the core never sees: the secrets typed into the form, before they go to the keychain, and a
// port text that is not a number.
import { invoke } from "@tauri-apps/api/core";
import type { DestinationSettings, SourceConfig } from "./api";
import type { FieldError } from "./bindings/FieldError";

/** Field name -> message, as the core's field errors name them. */
export type FieldMessages = Record<string, string>;

function byField(errors: FieldError[]): FieldMessages {
  const out: FieldMessages = {};
  for (const e of errors) out[e.field] ??= e.message;
  return out;
}

/** The core's checks of the Source screen's settings. */
export async function sourceErrors(source: SourceConfig): Promise<FieldMessages> {
  return byField(await invoke<FieldError[]>("validate_source", { source }));
}

/** The core's checks of the Destination screen's settings. */
export async function destinationErrors(destination: DestinationSettings): Promise<FieldMessages> {
  return byField(await invoke<FieldError[]>("validate_destination", { destination }));
}

const GUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/**
 * The client secret as typed (the core never sees it before the keychain): `stored`: the
 * keychain already holds it, so an empty field is fine.
 */
export function secretError(typed: string, stored: boolean): string | undefined {
  if (typed.trim() === "") return stored ? undefined : "Enter the client secret's Value.";
  if (GUID.test(typed.trim())) {
    return "This looks like the secret's ID. Enter its Value instead (shown once, when the secret is created).";
  }
  return undefined;
}

/** A password field that must be filled unless the keychain holds one. */
export function passwordError(typed: string, stored: boolean): string | undefined {
  return typed === "" && !stored ? "Enter the password; it will be kept in the system's secret store." : undefined;
}

/**
 * The port as the core takes it: empty is the default; text that is not a port from 1 to
 * 65535 becomes 0, which the core refuses with its own message.
 */
export function portValue(text: string): number | undefined {
  const port = text.trim();
  if (port === "") return undefined;
  const n = /^\d+$/.test(port) ? Number(port) : 0;
  return n >= 1 && n <= 65535 ? n : 0;
}
