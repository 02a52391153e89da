//! HTML bodies to plain text for DESCRIPTION (RFC 5545 §3.8.1.5 wants text; the HTML itself is
//! kept in X-ALT-DESC). Good enough for Outlook's bodies: block elements and `<br>` become line
//! breaks, `<style>`, `<script>` and `<head>` are dropped, entities are decoded, runs of blank
//! lines are collapsed.

/// The text a reader sees in `html`.
pub fn to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut rest = html;
    let mut skip_until: Option<&'static str> = None;
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            if skip_until.is_none() {
                push_text(&mut out, rest);
            }
            break;
        };
        if skip_until.is_none() {
            push_text(&mut out, &rest[..lt]);
        }
        rest = &rest[lt..];
        if rest.starts_with("<!--") {
            rest = rest.find("-->").map_or("", |e| &rest[e + 3..]);
            continue;
        }
        // `rest` starts with the one-byte '<'; the tag runs to the next '>' or the end.
        let (tag, after) = match rest[1..].find('>') {
            Some(i) => (&rest[1..1 + i], &rest[2 + i..]),
            None => (&rest[1..], ""),
        };
        rest = after;
        let closing = tag.starts_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        if let Some(until) = skip_until {
            if closing && name == until {
                skip_until = None;
            }
            continue;
        }
        match name.as_str() {
            "style" if !closing => skip_until = Some("style"),
            "script" if !closing => skip_until = Some("script"),
            "head" if !closing => skip_until = Some("head"),
            "br" => out.push('\n'),
            "p" | "div" | "tr" | "li" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "table"
            | "ul" | "ol" | "blockquote" | "hr" => {
                if !out.ends_with('\n') && !out.is_empty() {
                    out.push('\n');
                }
                if name == "li" && !closing {
                    out.push_str("- ");
                }
            }
            "td" | "th" if closing => out.push('\t'),
            _ => {}
        }
    }
    tidy(&out)
}

/// Appends a text node: whitespace runs become one space, entities are decoded.
fn push_text(out: &mut String, raw: &str) {
    let decoded = decode_entities(raw);
    for (i, word) in decoded.split_ascii_whitespace().enumerate() {
        let starts_with_space = i == 0
            && decoded
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_whitespace());
        if (i > 0 || starts_with_space) && !out.ends_with([' ', '\n', '\t']) && !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    if decoded.ends_with(|c: char| c.is_ascii_whitespace())
        && !decoded.trim().is_empty()
        && !out.ends_with([' ', '\n'])
    {
        out.push(' ');
    }
}

fn decode_entities(raw: &str) -> String {
    if !raw.contains('&') {
        return raw.to_string();
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let entity_end = rest.find(';').filter(|e| *e <= 10);
        let decoded = entity_end.and_then(|e| {
            let name = &rest[1..e];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some('\u{a0}'),
                _ => name
                    .strip_prefix("#x")
                    .or_else(|| name.strip_prefix("#X"))
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .or_else(|| name.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            };
            c.map(|c| (c, e))
        });
        match decoded {
            Some((c, e)) => {
                out.push(if c == '\u{a0}' { ' ' } else { c });
                rest = &rest[e + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Trims each line and keeps at most one blank line in a row.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = 0;
    for line in text.lines().map(|l| l.trim_matches([' ', '\t'])) {
        if line.is_empty() {
            blank += 1;
            if blank > 1 || out.is_empty() {
                continue;
            }
        } else {
            blank = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::to_text;

    #[test]
    fn outlook_html_becomes_readable_text() {
        let html =
            "<html><head><style>p{color:red}</style></head><body><div>Hello&nbsp;team,</div>\
                    <p>Agenda: <b>Q3</b> &amp; budget<br>Room 4 &lt;north&gt;</p><!-- x -->\
                    <ul><li>one</li><li>two</li></ul><p>&#8364;5 &#x263A;</p></body></html>";
        assert_eq!(
            to_text(html),
            "Hello team,\nAgenda: Q3 & budget\nRoom 4 <north>\n- one\n- two\n€5 ☺"
        );
        assert_eq!(to_text("plain & simple"), "plain & simple");
        assert_eq!(to_text("<p>unclosed <b"), "unclosed");
        // Regression: a tag cut off inside a multi-byte character must not split it.
        assert_eq!(to_text("x <é"), "x");
        assert_eq!(
            to_text("&é; &#xZZ; &#99999999; ü<br>ö"),
            "&é; &#xZZ; &#99999999; ü\nö"
        );
    }
}
