//! Contacts to vCard: 3.0 (RFC 2426) for the widest server support, 4.0 (RFC 6350) where the
//! server prefers it. `calcard` writes both, with each version's encodings (PHOTO as
//! `ENCODING=b` in 3.0, a `data:` URI in 4.0; dates as `yyyy-mm-dd` or `yyyymmdd`).
//!
//! Mapping (resources/contact.md):
//! - names → N (surname; given; middle; title; generation) and FN (displayName, else built
//!   from the parts, else company or email); nickName → NICKNAME; fileAs → N's SORT-AS (4.0)
//!   or SORT-STRING (3.0); initials → X-INITIALS; yomi names → X-PHONETIC-FIRST-NAME,
//!   X-PHONETIC-LAST-NAME, X-PHONETIC-ORG (as Apple's clients write them).
//! - emailAddresses → EMAIL (TYPE from the beta `type`: work, home, other); businessPhones,
//!   homePhones, mobilePhone → TEL;TYPE=WORK,VOICE / HOME,VOICE / CELL; addresses → ADR with
//!   TYPE=WORK / HOME (other address without a type).
//! - birthday → BDAY (a date: Exchange stores birthdays near noon UTC, so the date is the one
//!   nearest in UTC); companyName, department → ORG; jobTitle → TITLE; profession → ROLE;
//!   businessHomePage → URL; imAddresses → IMPP (a bare address gets `sip:`, as Outlook's
//!   IM addresses are SIP); personalNotes → NOTE; categories → CATEGORIES.
//! - officeLocation, manager, assistantName, spouseName, children → X-OFFICE, X-MANAGER,
//!   X-ASSISTANT, X-SPOUSE, X-CHILDREN (no standard vCard property holds a plain name of a
//!   relation in 3.0; kept in X- properties in both versions, as Evolution and KAddressBook do).
//! - UID derived from the Graph id (contacts have no iCalendar-style UID); REV from
//!   lastModifiedDateTime; PHOTO from the bytes the caller fetched (`/contacts/{id}/photo/$value`).

use calcard::common::{Data, PartialDateTime};
use calcard::vcard::{
    VCard, VCardEntry, VCardParameter, VCardProperty, VCardType, VCardValue, VCardValueType,
};

use super::recurrence::partial_date;
use super::timezone::{nearest_date, parse_wall};
use super::{CardResource, ConvertError};
use crate::graph::types::{Contact, PhysicalAddress};

pub use calcard::vcard::VCardVersion;

/// Converts a contact; `photo` is `(media type, bytes)`.
pub fn to_vcard(
    contact: &Contact,
    photo: Option<(&str, &[u8])>,
    version: VCardVersion,
) -> Result<CardResource, ConvertError> {
    let v4 = matches!(version, VCardVersion::V4_0);
    let mut notes = Vec::new();
    let mut e: Vec<VCardEntry> = Vec::new();
    let text = |s: &Option<String>| -> Option<String> {
        s.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let plain = |name: VCardProperty, value: String| VCardEntry::new(name).with_value(value);
    let other = |name: &str| VCardProperty::Other(name.to_string());
    let uid = super::uid_from_graph_id("contact", &contact.id);

    // FN is required (RFC 6350 §6.2.1).
    let parts: Vec<String> = [&contact.given_name, &contact.middle_name, &contact.surname]
        .into_iter()
        .filter_map(text)
        .collect();
    let first_email = contact
        .email_addresses
        .iter()
        .find_map(|m| text(&m.address));
    let full_name = text(&contact.display_name)
        .or_else(|| (!parts.is_empty()).then(|| parts.join(" ")))
        .or_else(|| text(&contact.company_name))
        .or(first_email)
        .unwrap_or_else(|| {
            notes.push("contact has no name; FN left empty".to_string());
            String::new()
        });
    e.push(plain(VCardProperty::Fn, full_name));

    let n_values = [
        &contact.surname,
        &contact.given_name,
        &contact.middle_name,
        &contact.title,
        &contact.generation,
    ]
    .into_iter()
    .map(|s| VCardValue::Text(text(s).unwrap_or_default()))
    .collect();
    let mut n = VCardEntry::new(VCardProperty::N).with_values(n_values);
    if let Some(file_as) = text(&contact.file_as) {
        if v4 {
            n = n.with_param(VCardParameter::sort_as(file_as));
        } else {
            e.push(plain(other("SORT-STRING"), file_as));
        }
    }
    e.push(n);
    if let Some(s) = text(&contact.nick_name) {
        e.push(plain(VCardProperty::Nickname, s));
    }
    for (name, value) in [
        ("X-INITIALS", &contact.initials),
        ("X-PHONETIC-FIRST-NAME", &contact.yomi_given_name),
        ("X-PHONETIC-LAST-NAME", &contact.yomi_surname),
        ("X-PHONETIC-ORG", &contact.yomi_company_name),
    ] {
        if let Some(s) = text(value) {
            e.push(plain(other(name), s));
        }
    }

    for mail in &contact.email_addresses {
        let Some(address) = text(&mail.address) else {
            continue;
        };
        let mut types = Vec::new();
        if !v4 {
            types.push(VCardParameter::typ("INTERNET".to_string()));
        }
        match mail.kind.as_deref() {
            Some("work") => types.push(VCardParameter::typ(VCardType::Work)),
            Some("personal") => types.push(VCardParameter::typ(VCardType::Home)),
            Some("other") => types.push(VCardParameter::typ("OTHER".to_string())),
            _ => {}
        }
        e.push(
            VCardEntry::new(VCardProperty::Email)
                .with_params(types)
                .with_value(address),
        );
    }

    let phones = contact
        .business_phones
        .iter()
        .map(|p| (p, vec![VCardType::Work, VCardType::Voice]))
        .chain(
            contact
                .home_phones
                .iter()
                .map(|p| (p, vec![VCardType::Home, VCardType::Voice])),
        )
        .chain(
            contact
                .mobile_phone
                .iter()
                .map(|p| (p, vec![VCardType::Cell, VCardType::Voice])),
        );
    for (number, types) in phones {
        let number = number.trim();
        if number.is_empty() {
            continue;
        }
        e.push(
            VCardEntry::new(VCardProperty::Tel)
                .with_params(types.into_iter().map(VCardParameter::typ).collect())
                .with_value(number.to_string()),
        );
    }

    for (address, kind) in [
        (&contact.business_address, Some(VCardType::Work)),
        (&contact.home_address, Some(VCardType::Home)),
        (&contact.other_address, None),
    ] {
        if let Some(a) = address.as_ref().filter(|a| !a.is_empty()) {
            e.push(adr(a, kind));
        }
    }

    if let Some(raw) = contact.birthday.as_deref() {
        match parse_wall(raw).map(nearest_date) {
            Some(d) => {
                let value: PartialDateTime = partial_date(d)?;
                e.push(
                    VCardEntry::new(VCardProperty::Bday)
                        .with_param(VCardParameter::value(VCardValueType::Date))
                        .with_value(VCardValue::PartialDateTime(value)),
                );
            }
            None => notes.push(format!("birthday {raw:?} is not a date; left out")),
        }
    }

    let company = text(&contact.company_name);
    let department = text(&contact.department);
    if company.is_some() || department.is_some() {
        let mut values = vec![VCardValue::Text(company.unwrap_or_default())];
        if let Some(d) = department {
            values.push(VCardValue::Text(d));
        }
        e.push(VCardEntry::new(VCardProperty::Org).with_values(values));
    }
    if let Some(s) = text(&contact.job_title) {
        e.push(plain(VCardProperty::Title, s));
    }
    if let Some(s) = text(&contact.profession) {
        e.push(plain(VCardProperty::Role, s));
    }
    if let Some(s) = text(&contact.business_home_page) {
        e.push(
            VCardEntry::new(VCardProperty::Url)
                .with_param(VCardParameter::typ(VCardType::Work))
                .with_value(s),
        );
    }
    for im in &contact.im_addresses {
        let im = im.trim();
        if im.is_empty() {
            continue;
        }
        let uri = if im.contains(':') {
            im.to_string()
        } else {
            format!("sip:{im}")
        };
        e.push(plain(VCardProperty::Impp, uri));
    }
    for (name, value) in [
        ("X-OFFICE", &contact.office_location),
        ("X-MANAGER", &contact.manager),
        ("X-ASSISTANT", &contact.assistant_name),
        ("X-SPOUSE", &contact.spouse_name),
    ] {
        if let Some(s) = text(value) {
            e.push(plain(other(name), s));
        }
    }
    let children: Vec<&str> = contact
        .children
        .iter()
        .map(|c| c.trim())
        .filter(|c| !c.is_empty())
        .collect();
    if !children.is_empty() {
        e.push(plain(other("X-CHILDREN"), children.join(", ")));
    }
    let categories: Vec<VCardValue> = contact
        .categories
        .iter()
        .map(|c| c.trim())
        .filter(|c| !c.is_empty())
        .map(|c| VCardValue::Text(c.to_string()))
        .collect();
    if !categories.is_empty() {
        e.push(VCardEntry::new(VCardProperty::Categories).with_values(categories));
    }
    if let Some(s) = contact
        .personal_notes
        .as_deref()
        .map(|s| s.replace("\r\n", "\n"))
        .filter(|s| !s.trim().is_empty())
    {
        e.push(plain(VCardProperty::Note, s.trim_end().to_string()));
    }
    if let Some((media_type, bytes)) = photo.filter(|(_, b)| !b.is_empty()) {
        let value = if v4 {
            // RFC 6350 §6.2.4: a data: URI (RFC 2397), written as URI text without escapes
            // (calcard's binary form escapes the comma, which a URI value does not take).
            use base64::Engine;
            VCardValue::Text(format!(
                "data:{media_type};base64,{}",
                base64::engine::general_purpose::STANDARD.encode(bytes)
            ))
        } else {
            // RFC 2426 §3.1.4: PHOTO;ENCODING=b;TYPE=<format>.
            VCardValue::Binary(Data {
                content_type: Some(media_type.to_string()),
                data: bytes.to_vec(),
            })
        };
        e.push(VCardEntry::new(VCardProperty::Photo).with_value(value));
    }
    e.push(plain(VCardProperty::Uid, uid.clone()));
    if let Some(t) = contact
        .last_modified_date_time
        .as_deref()
        .and_then(|raw| super::event::utc_stamp(Some(raw)))
    {
        e.push(VCardEntry::new(VCardProperty::Rev).with_value(VCardValue::PartialDateTime(t)));
    }

    let card = VCard { entries: e };
    let mut out = String::new();
    card.write_to(&mut out, version)
        .map_err(|_| ConvertError::Write("vCard"))?;
    Ok(CardResource {
        uid,
        text: out,
        notes,
    })
}

/// ADR: post-office box; extended; street; locality; region; postal code; country.
fn adr(a: &PhysicalAddress, kind: Option<VCardType>) -> VCardEntry {
    let f = |s: &Option<String>| VCardValue::Text(s.as_deref().unwrap_or("").trim().to_string());
    let entry = VCardEntry::new(VCardProperty::Adr).with_values(vec![
        VCardValue::Text(String::new()),
        VCardValue::Text(String::new()),
        f(&a.street),
        f(&a.city),
        f(&a.state),
        f(&a.postal_code),
        f(&a.country_or_region),
    ]);
    match kind {
        Some(k) => entry.with_param(VCardParameter::typ(k)),
        None => entry,
    }
}
