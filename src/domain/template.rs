//! Templates for the texts an incident gets: `{placeholder}`s naming the alert's fields, with
//! `{{` and `}}` for braces. Parsed when the settings are read, so a typo is a 400 at once.

/// The values a template can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
            .collect::<Vec<_>>()
            .join(", ")
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
                    let name: String = chars.by_ref().take_while(|&c| c != '}').collect();
                    let placeholder = Placeholder::ALL
                        .iter()
                        .find(|(known, _)| *known == name)
                        .map(|(_, p)| *p)
                        .ok_or_else(|| {
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

    pub fn render(&self, value: impl Fn(Placeholder) -> String) -> String {
        self.0
            .iter()
            .map(|segment| match segment {
                Segment::Text(text) => text.clone(),
                Segment::Value(placeholder) => value(*placeholder),
            })
            .collect()
    }
}
