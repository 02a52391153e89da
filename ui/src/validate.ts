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

// --- Destination ------------------------------------------------------------------------

/**
 * The Destination screen's fields as typed (passwords are separate: see SecretField); the paths
 * are the ones chosen in native dialogs, empty when none was chosen.
 */
export interface DestinationFields {
  kind: "iceWarp" | "imap" | "folder";
  iceWarpHost: string;
  adminEmail: string;
  credentialsReport: string;
  host: string;
  port: string;
  login: "master" | "csv";
  masterUser: string;
  accountsCsv: string;
  /** CalDAV/CardDAV base URL for groupware; empty: mail only. */
  davUrl: string;
  path: string;
}

/** A host name or address, with an optional port; no scheme. */
function hostOk(host: string): boolean {
  return host !== "" && !host.includes("://") && /^[A-Za-z0-9.\-:[\]]+$/.test(host);
}

/**
 * Field name -> message for each field that is not right; the backend applies the same rules
 * (validate_destination). `passwordStored`: the keychain already holds the admin password.
 */
export function checkDestination(f: DestinationFields, password: string, passwordStored: boolean): Record<string, string> {
  const errors: Record<string, string> = {};
  const needPassword = (field: string) => {
    if (password === "" && !passwordStored) errors[field] = "Enter the password; it will be kept in the system's secret store.";
  };
  if (f.kind === "iceWarp") {
    if (!hostOk(f.iceWarpHost.trim())) errors.iceWarpHost = "Enter the IceWarp server's host name, such as mail.example.com (no https://).";
    // Its shape (an address, or a username under IceWarp's username login policy) is the
    // core's rule, applied by validate_destination.
    if (f.adminEmail.trim() === "") {
      errors.adminEmail = "Enter the administrator's email address, such as admin@example.com, or its username when IceWarp logs in with usernames.";
    }
    needPassword("adminPassword");
    if (f.credentialsReport === "") {
      errors.credentialsReport = "Choose where the new accounts' passwords are written (Choose where…).";
    }
  } else if (f.kind === "imap") {
    if (!hostOk(f.host.trim())) {
      errors.host = "Enter the IMAP server's host name, such as imap.example.com (no imap://).";
    }
    const port = f.port.trim();
    if (port !== "" && !(/^\d+$/.test(port) && Number(port) >= 1 && Number(port) <= 65535)) {
      errors.port = "Enter a port from 1 to 65535 (993 for TLS, 143 for STARTTLS).";
    }
    if (f.login === "master") {
      if (f.masterUser.trim() === "") errors.masterUser = "Enter the master user's login name.";
      else needPassword("masterPassword");
    } else {
      if (f.accountsCsv === "") errors.accountsCsv = "Choose the accounts CSV file (Choose file…).";
      const dav = f.davUrl.trim();
      if (dav !== "" && !/^https?:\/\/[^\s/]+/.test(dav)) {
        errors.davUrl = "Enter the CalDAV/CardDAV server's address, such as https://dav.example.com/, or leave it empty for mail only.";
      }
    }
  } else if (f.path === "") {
    errors.path = "Choose the folder the mail goes to (Choose folder…).";
  }
  return errors;
}
