//! Templates for the texts an incident gets: `{placeholder}`s naming the alert's fields, with
//! `{{` and `}}` for braces. Parsed when the settings are read, so a typo is a 400 at once.

/// The values a template can name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placeholder {
    Status,
    Summary,
    Details,
    Priority,
    AlertSource,
    AlertKey,
    ReportTime,
    AlertId,
    AlertUrl,
    Links,
    Comment,
    Actor,
    /// `{label.<name>}`: one of the alert's labels; empty when the alert has none by that name.
    Label(String),
    /// `{custom.<name>}`: one of the alert's custom details; empty when absent.
    Custom(String),
}

impl Placeholder {
    const ALL: [(&'static str, Placeholder); 12] = [
        ("status", Self::Status),
        ("summary", Self::Summary),
        ("details", Self::Details),
        ("priority", Self::Priority),
        ("alert_source", Self::AlertSource),
        ("alert_key", Self::AlertKey),
        ("report_time", Self::ReportTime),
        ("alert_id", Self::AlertId),
        ("alert_url", Self::AlertUrl),
        ("links", Self::Links),
        ("comment", Self::Comment),
        ("actor", Self::Actor),
    ];

    fn names() -> String {
        Self::ALL
            .iter()
            .map(|(name, _)| format!("{{{name}}}"))
            .chain(["{label.<name>}".to_owned(), "{custom.<name>}".to_owned()])
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn named(name: &str) -> Option<Self> {
        if let Some((_, known)) = Self::ALL.iter().find(|(known, _)| *known == name) {
            return Some(known.clone());
        }
        // A label's or detail's own name: any text but braces, as iLert allows
        // (`app.kubernetes.io/name`), within reason.
        let usable = |key: &str| {
            !key.trim().is_empty() && key.chars().count() <= 100 && !key.contains(['{', '}'])
        };
        match name.split_once('.') {
            Some(("label", key)) if usable(key) => Some(Self::Label(key.to_owned())),
            Some(("custom", key)) if usable(key) => Some(Self::Custom(key.to_owned())),
            _ => None,
        }
    }
}

/// Text with `{placeholder}`s; `{{` and `}}` stand for braces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Segment>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Text(String),
    Value(Placeholder),
}

impl Template {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut segments = Vec::new();
        let mut text = String::new();
        let mut chars = raw.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    text.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    let mut closed = false;
                    for c in chars.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        name.push(c);
                    }
                    if !closed {
                        return Err(format!(
                            "has a `{{` without its `}}` (write `{{{{` for a brace): {{{name}"
                        ));
                    }
                    let placeholder = Placeholder::named(&name).ok_or_else(|| {
                        format!(
                            "has an unknown placeholder {{{name}}}; known: {}",
                            Placeholder::names()
                        )
                    })?;
                    if !text.is_empty() {
                        segments.push(Segment::Text(std::mem::take(&mut text)));
                    }
                    segments.push(Segment::Value(placeholder));
                }
                '}' => return Err("has a `}` without its `{` (write `}}` for a brace)".into()),
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            segments.push(Segment::Text(text));
        }
        Ok(Self(segments))
    }

    pub fn render(&self, value: impl Fn(&Placeholder) -> String) -> String {
        self.0
            .iter()
            .map(|segment| match segment {
                Segment::Text(text) => text.clone(),
                Segment::Value(placeholder) => value(placeholder),
            })
            .collect()
    }
}
