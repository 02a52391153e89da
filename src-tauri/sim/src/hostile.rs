//! A hostile mail corpus added to a generated mailbox (issue 10, "Bad input"): broken MIME,
//! 8-bit and invalid UTF-8 headers, a zero-byte message (Graph returns an empty `$value`),
//! a folder name of 300 characters, a tree 100 levels deep, names with control characters
//! and the separators IMAP and Maildir++ use; series with impossible recurrences
//! ([`add_impossible_recurrences`]). Existing tenants are unchanged: a test adds the corpus
//! with [`crate::SimServer::mutate`] and [`add_hostile_mail`] or [`add_hostile_groupware`].

use time::{Duration, OffsetDateTime};

use crate::calendar::{
    Event, EventException, Pattern, PatternType, Range, RangeEnd, Recurrence, WeekIndex, Zone,
};
use crate::groupware::{sample_contact, sample_event, Photo};
use crate::tenant::{MailFolder, Message, User};

/// Depth of the deep folder tree.
pub const DEEP_TREE_LEVELS: usize = 100;

/// The message whose `$value` is empty: no destination can hold it.
pub const ZERO_BYTE_MESSAGE: &str = "AAkALgHostileZeroByte";

/// The message with bare LF line ends (and a NUL byte), which IMAP servers store with CRLF.
pub const BARE_LF_MESSAGE: &str = "AAkALgHostileBareLf";

/// Adds the hostile folders and messages to `user`'s mailbox (ids are fixed: call once).
pub fn add_hostile_mail(user: &mut User) {
    let base =
        OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let at = |n: i64| base + Duration::minutes(n);
    let mut folders = Vec::new();
    let mut folder = |id: String, parent: Option<String>, name: String, messages: Vec<Message>| {
        folders.push(MailFolder {
            id,
            parent_id: parent,
            display_name: name,
            well_known_name: None,
            is_hidden: false,
            is_search_folder: false,
            messages,
        });
    };
    let broken = vec![
        // No blank line between head and body, and a boundary that never appears.
        Message::from_mime(
            "AAkALgHostileNoBoundary",
            b"From: a@contoso.com\r\nSubject: broken multipart\r\nMessage-ID: <broken-1@contoso.com>\r\nContent-Type: multipart/mixed; boundary=\"never\"\r\n--other\r\nno end".to_vec(),
            at(1),
        ),
        // Raw Latin-1 (8-bit) in Subject and From: not UTF-8, not encoded words.
        Message::from_mime(
            "AAkALgHostileLatin1",
            b"From: J\xfcrgen <j@contoso.com>\r\nSubject: R\xe9sum\xe9 f\xfcr M\xe4rz\r\nMessage-ID: <latin1@contoso.com>\r\n\r\nbody\r\n".to_vec(),
            at(2),
        ),
        // Invalid UTF-8 sequences (overlong, lone continuation, truncated) in headers.
        Message::from_mime(
            "AAkALgHostileBadUtf8",
            b"From: \xc0\xaf\x80 <x@contoso.com>\r\nSubject: \xe2\x82\r\nMessage-ID: <bad-\xff-utf8@contoso.com>\r\n\r\nbody\r\n".to_vec(),
            at(3),
        ),
        // Bare LF line endings, a NUL byte and a header without a colon.
        Message::from_mime(
            BARE_LF_MESSAGE,
            b"From: lf@contoso.com\nSubject: bare LF\nnot a header\nMessage-ID: <lf@contoso.com>\n\nline\0with NUL\n".to_vec(),
            at(4),
        ),
        // Only a body, no header at all.
        Message::from_mime("AAkALgHostileNoHeader", b"just text, no header\r\n".to_vec(), at(5)),
        // A header line of 20 KB (RFC 5322 §2.1.1 allows 998).
        Message::from_mime(
            "AAkALgHostileLongLine",
            format!(
                "From: long@contoso.com\r\nSubject: {}\r\nMessage-ID: <long@contoso.com>\r\n\r\nbody\r\n",
                "x".repeat(20_000)
            )
            .into_bytes(),
            at(6),
        ),
        // Graph returns an empty `$value` for this one.
        Message::from_mime(ZERO_BYTE_MESSAGE, Vec::new(), at(7)),
    ];
    folder(
        "AAMkHostileBroken".into(),
        None,
        "Broken MIME".into(),
        broken,
    );
    let one = |id: &str, n: i64| {
        Message::from_mime(
            format!("AAkALgHostileIn{id}"),
            format!("From: h@contoso.com\r\nSubject: in {id}\r\nMessage-ID: <in-{id}@contoso.com>\r\n\r\nbody of {id}\r\n")
                .into_bytes(),
            at(n),
        )
    };
    folder(
        "AAMkHostileLongName".into(),
        None,
        "Ä".repeat(150) + &"n".repeat(150),
        vec![one("long", 10)],
    );
    folder(
        "AAMkHostileControl".into(),
        None,
        "tab\there\u{1}bell\u{7}del\u{7f}nl\r\nend".into(),
        vec![one("control", 11)],
    );
    folder(
        "AAMkHostileSeparators".into(),
        None,
        "a/b.c\\d..e/".into(),
        vec![one("separators", 12)],
    );
    folder(
        "AAMkHostileDots".into(),
        None,
        "..".into(),
        vec![one("dots", 13)],
    );
    let mut parent = None;
    for level in 0..DEEP_TREE_LEVELS {
        let id = format!("AAMkHostileDeep{level}");
        let messages = if level + 1 == DEEP_TREE_LEVELS {
            vec![one("deep", 14)]
        } else {
            Vec::new()
        };
        folder(
            id.clone(),
            parent.take(),
            format!("level {level}"),
            messages,
        );
        parent = Some(id);
    }
    user.folders.extend(folders);
}

/// Id of the contact whose photo is larger than the 4 MiB the migrator reads.
pub const HUGE_PHOTO_CONTACT: &str = "AAMkHostileHugePhoto";

/// Id of the event in a time zone no table knows.
pub const UNKNOWN_ZONE_EVENT: &str = "AAMkHostileUnknownZone";

/// Adds a contact with a 5 MiB photo to the default contact folder, and to the default
/// calendar an event in an unknown Windows time zone and the series of
/// [`add_impossible_recurrences`] (ids fixed: call once).
pub fn add_hostile_groupware(user: &mut User) {
    add_impossible_recurrences(user);
    let mut contact = sample_contact(0x5eed);
    contact.id = HUGE_PHOTO_CONTACT.into();
    contact.photo = Some(Photo {
        content_type: "image/jpeg".into(),
        width: 4000,
        height: 4000,
        bytes: vec![0xff; 5 * 1024 * 1024],
    });
    if let Some(folder) = user.contact_folders.first_mut() {
        folder.contacts.push(contact);
    }
    let start = time::macros::datetime!(2024-04-29 09:00);
    let mut event = sample_event(
        0x5eed,
        "Meeting on Mars",
        Zone::windows("Mars Standard Time"),
        start,
    );
    event.id = UNKNOWN_ZONE_EVENT.into();
    if let Some(calendar) = user.calendars.first_mut() {
        calendar.events.push(event);
    }
}

/// absoluteYearly on February 30 (`month` 2, `dayOfMonth` 30): a date no year has.
pub const FEB_30_SERIES: &str = "AAMkHostileFeb30";
/// absoluteMonthly on the 31st, six occurrences from 2025-01-31: Exchange puts the months
/// without a 31st on their last day (EWS `DayOfMonth`).
pub const DAY_31_SERIES: &str = "AAMkHostileDay31";
/// relativeMonthly with `index` "fifth" (Graph defines first…fourth and last), on Monday.
pub const FIFTH_MONDAY_SERIES: &str = "AAMkHostileFifthMonday";
/// Weekly on Monday, four occurrences from 2025-01-06, with an exception whose original
/// start (Tuesday 2025-01-14) is not an occurrence.
pub const STRAY_EXCEPTION_SERIES: &str = "AAMkHostileStrayException";
/// The exception of [`STRAY_EXCEPTION_SERIES`], moved to 2025-01-14 15:00.
pub const STRAY_EXCEPTION: &str = "AAMkHostileStrayExceptionX";
/// Daily, its range ending (2025-05-01) before it starts (2025-05-10).
pub const END_BEFORE_START_SERIES: &str = "AAMkHostileEndBeforeStart";
/// Daily, a numbered range of 0 occurrences.
pub const ZERO_OCCURRENCES_SERIES: &str = "AAMkHostileZeroOccurrences";

/// Adds six series with impossible recurrences to `user`'s default calendar (ids above; call
/// once). All are in W. Europe Standard Time, one hour long.
pub fn add_impossible_recurrences(user: &mut User) {
    use time::macros::{date, datetime};
    use time::Weekday;
    let series = |seed: u64, id: &str, start: time::PrimitiveDateTime, pattern, end| {
        let mut event = sample_event(
            seed,
            &format!("Impossible {id}"),
            Zone::windows("W. Europe Standard Time"),
            start,
        );
        event.id = id.into();
        event.recurrence = Some(Recurrence {
            pattern,
            range: Range {
                start_date: start.date(),
                end,
            },
        });
        event
    };
    let pattern = |kind, f: &dyn Fn(&mut Pattern)| {
        let mut p = Pattern::new(kind, 1);
        f(&mut p);
        p
    };
    let mut stray = series(
        0xbad4,
        STRAY_EXCEPTION_SERIES,
        datetime!(2025-01-06 11:00),
        pattern(PatternType::Weekly, &|p| {
            p.days_of_week = vec![Weekday::Monday];
        }),
        RangeEnd::Numbered(4),
    );
    stray.exceptions.push(EventException {
        id: STRAY_EXCEPTION.into(),
        original_date: date!(2025 - 01 - 14),
        start: datetime!(2025-01-14 15:00),
        end: datetime!(2025-01-14 16:00),
        subject: "Moved from a Tuesday that never was".into(),
        location: "Room 0".into(),
        last_modified: stray.last_modified,
    });
    let events: Vec<Event> = vec![
        series(
            0xbad1,
            FEB_30_SERIES,
            datetime!(2025-02-28 10:00),
            pattern(PatternType::AbsoluteYearly, &|p| {
                p.month = 2;
                p.day_of_month = 30;
            }),
            RangeEnd::NoEnd,
        ),
        series(
            0xbad2,
            DAY_31_SERIES,
            datetime!(2025-01-31 09:00),
            pattern(PatternType::AbsoluteMonthly, &|p| p.day_of_month = 31),
            RangeEnd::Numbered(6),
        ),
        series(
            0xbad3,
            FIFTH_MONDAY_SERIES,
            datetime!(2025-03-31 08:00),
            pattern(PatternType::RelativeMonthly, &|p| {
                p.days_of_week = vec![Weekday::Monday];
                p.index = WeekIndex::Fifth;
            }),
            RangeEnd::NoEnd,
        ),
        stray,
        series(
            0xbad5,
            END_BEFORE_START_SERIES,
            datetime!(2025-05-10 12:00),
            pattern(PatternType::Daily, &|_| {}),
            RangeEnd::EndDate(date!(2025 - 05 - 01)),
        ),
        series(
            0xbad6,
            ZERO_OCCURRENCES_SERIES,
            datetime!(2025-06-02 13:00),
            pattern(PatternType::Daily, &|_| {}),
            RangeEnd::Numbered(0),
        ),
    ];
    if let Some(calendar) = user.calendars.first_mut() {
        calendar.events.extend(events);
    }
}

/// Id of the message [`add_huge_message`] adds.
pub const HUGE_MESSAGE: &str = "AAkALgHostileHuge";

/// Adds one message of `size` bytes (a text body of `x` lines) to a new top-level folder
/// "Huge"; the long test uses 150 MB.
pub fn add_huge_message(user: &mut User, size: usize) {
    let head = b"From: big@contoso.com\r\nSubject: huge\r\nMessage-ID: <huge@contoso.com>\r\n\r\n";
    let mut bytes = Vec::with_capacity(size.max(head.len()));
    bytes.extend_from_slice(head);
    while bytes.len() + 78 <= size {
        bytes.extend_from_slice(&[b'x'; 76]);
        bytes.extend_from_slice(b"\r\n");
    }
    let at =
        OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    user.folders.push(MailFolder {
        id: "AAMkHostileHuge".into(),
        parent_id: None,
        display_name: "Huge".into(),
        well_known_name: None,
        is_hidden: false,
        is_search_folder: false,
        messages: vec![Message::from_mime(HUGE_MESSAGE, bytes, at)],
    });
}

/// Adds a top-level folder "Many" of `count` small messages: more than one page of the
/// migrator's listing (500), so [`crate::Faults::repeat_page_item`] repeats one.
pub fn add_many_messages(user: &mut User, count: usize) {
    let at =
        OffsetDateTime::from_unix_timestamp(1_600_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let messages = (0..count)
        .map(|n| {
            Message::from_mime(
                format!("AAkALgHostileMany{n:04}"),
                format!("From: m@contoso.com\r\nSubject: many {n}\r\nMessage-ID: <many-{n}@contoso.com>\r\n\r\nbody {n}\r\n")
                    .into_bytes(),
                at - Duration::minutes(n as i64),
            )
        })
        .collect();
    user.folders.push(MailFolder {
        id: "AAMkHostileMany".into(),
        parent_id: None,
        display_name: "Many".into(),
        well_known_name: None,
        is_hidden: false,
        is_search_folder: false,
        messages,
    });
}
