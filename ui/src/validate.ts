// Instant, client-side checks of the Source fields. The backend applies the same rules
// (validate_source) before anything runs.

const GUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

export function isGuid(value: string): boolean {
  return GUID.test(value.trim());
}

export function isTenantId(value: string): boolean {
  const v = value.trim();
  if (isGuid(v)) return true;
  const labels = v.split(".");
  return v.length <= 253 && labels.length > 1 && labels.every((l) => LABEL.test(l));
}

export interface SourceFields {
  tenantId: string;
  clientId: string;
  clientSecret: string;
}

/**
 * Field name -> message, for each field that is not right. `secretStored`: the backend already
 * holds the client secret, so an empty field is fine.
 */
export function checkSource(f: SourceFields, secretStored = false): Record<string, string> {
  const errors: Record<string, string> = {};
  if (!isTenantId(f.tenantId)) {
    errors.tenantId =
      "Enter the Directory (tenant) ID: a GUID, or a domain such as contoso.onmicrosoft.com.";
  }
  if (!isGuid(f.clientId)) {
    errors.clientId =
      "Enter the Application (client) ID: a GUID from the app registration's Overview page.";
  }
  if (f.clientSecret.trim() === "") {
    if (!secretStored) errors.clientSecret = "Enter the client secret's Value.";
  } else if (isGuid(f.clientSecret)) {
    errors.clientSecret =
      "This looks like the secret's ID. Enter its Value instead (shown once, when the secret is created).";
  }
  return errors;
}
