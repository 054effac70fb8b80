//! The settings of `target=event`: where an alert's events go, and what an Event Management
//! record carries (sources: `domain::event_record`'s).

use super::InvalidSetting;
use crate::domain::template::Template;

/// Where an alert's events go: an incident (the default) or Event Management.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Target {
    #[default]
    Incident,
    Event,
}

/// The settings of `target=event`: the record's identifying fields (templates, empty when
/// not set) and the severities of an open alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSettings {
    pub node: Option<Template>,
    pub kind: Option<Template>,
    pub resource: Option<Template>,
    pub metric_name: Option<Template>,
    /// HIGH alerts: 2, Major.
    pub severity_high: Severity,
    /// LOW alerts: 4, Warning.
    pub severity_low: Severity,
}

impl Default for EventSettings {
    fn default() -> Self {
        Self {
            node: None,
            kind: None,
            resource: None,
            metric_name: None,
            severity_high: Severity(2),
            severity_low: Severity(4),
        }
    }
}

/// The settings' names, besides `target`.
pub const EVENT_SETTING_NAMES: [&str; 6] = [
    "event_node",
    "event_type",
    "event_resource",
    "event_metric_name",
    "event_severity_high",
    "event_severity_low",
];

impl EventSettings {
    /// Sets one of [`EVENT_SETTING_NAMES`]; `refuse` says what it accepts.
    pub(crate) fn set(
        &mut self,
        name: &str,
        text: &str,
        parse_template: impl Fn(&str) -> Result<Option<Template>, InvalidSetting>,
        refuse: impl Fn(&str) -> InvalidSetting,
    ) -> Result<(), InvalidSetting> {
        match name {
            "event_node" => self.node = parse_template(text)?,
            "event_type" => self.kind = parse_template(text)?,
            "event_resource" => self.resource = parse_template(text)?,
            "event_metric_name" => self.metric_name = parse_template(text)?,
            "event_severity_high" | "event_severity_low" => {
                let severity = Severity::open(text).ok_or_else(|| {
                    refuse(
                        "1 Critical, 2 Major, 3 Minor, 4 Warning or 5 OK (0, Clear, is what a \
                         resolve sends)",
                    )
                })?;
                if name == "event_severity_high" {
                    self.severity_high = severity;
                } else {
                    self.severity_low = severity;
                }
            }
            _ => unreachable!("only the names of EVENT_SETTING_NAMES are passed"),
        }
        Ok(())
    }
}

/// An event's severity [D1 L172]: 1 Critical to 5 OK for an open alert, 0 Clear to close it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Severity(u8);

impl Severity {
    /// Closes the alert of the same key [D2 L99–104].
    pub const CLEAR: Self = Self(0);

    /// The number ServiceNow reads.
    pub(crate) fn code(self) -> u8 {
        self.0
    }

    /// A severity an open alert may have, `1` to `5`.
    fn open(text: &str) -> Option<Self> {
        match text.trim() {
            digit @ ("1" | "2" | "3" | "4" | "5") => digit.parse().ok().map(Self),
            _ => None,
        }
    }
}
