//! How incidents are shaped: close code and how iLert's priority maps to impact and urgency.

/// Impact and urgency, 1 (high) to 3 (low). ServiceNow computes `priority` from the pair, so
/// the pair is what this function writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImpactUrgency {
    pub impact: u8,
    pub urgency: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `close_code` written on resolve. Values differ by ServiceNow release (Utah and later:
    /// `Solution provided`; earlier: `Solved (Permanently)`).
    pub close_code: String,
    /// HIGH alerts: impact 2, urgency 1, which the default matrix makes priority 2 (High).
    pub priority_high: ImpactUrgency,
    /// LOW alerts: impact 3, urgency 2, priority 4 (Low).
    pub priority_low: ImpactUrgency,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            close_code: "Solution provided".to_owned(),
            priority_high: ImpactUrgency {
                impact: 2,
                urgency: 1,
            },
            priority_low: ImpactUrgency {
                impact: 3,
                urgency: 2,
            },
        }
    }
}
