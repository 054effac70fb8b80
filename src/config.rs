//! The deployment's configuration: every environment variable the function reads, read once
//! at start into one typed value. A variable that cannot be used is a problem that names it:
//! every call is answered `500` saying so (after authentication), and `check` prints a line
//! for each. Nothing falls back to a default behind the operator's back.

use crate::adapters::queue::queued_delivery;
use crate::adapters::secrets::cache_ttl_from;
use crate::domain::settings::{InvalidSetting, Settings};
use crate::flow::budget::time_budget_from;
use crate::flow::sync::{settle_delay_from, DEFAULT_SETTLE_DELAY};
use std::collections::HashMap;
use std::time::Duration;

/// One variable that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub variable: &'static str,
    pub problem: String,
}

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.problem)
    }
}

/// The deployment's queues: every event's (`DELIVERY=queued`), or direct delivery's safety
/// net for what ServiceNow cannot take for now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queues {
    pub queue_url: String,
    pub dead_letter_url: String,
    /// Queued delivery: every event goes through the queue.
    pub every_event: bool,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub secret_cache_ttl: Duration,
    pub time_budget: Duration,
    /// `None`: direct delivery.
    pub queues: Option<Queues>,
    pub settle_delay: Duration,
    /// `DEFAULT_SETTINGS` over the built-in defaults, or why it is unusable (answered `500`
    /// naming the setting, as each alert action's own settings are checked against it).
    pub defaults: Result<Settings, InvalidSetting>,
    /// Every other variable that cannot be used.
    pub problems: Vec<ConfigProblem>,
}

impl Config {
    /// Reads `variables` (the process's environment, in Lambda).
    pub fn from_environment(variables: impl IntoIterator<Item = (String, String)>) -> Self {
        let variables: HashMap<String, String> = variables.into_iter().collect();
        let get = |name: &str| variables.get(name).map(String::as_str);
        let mut problems = Vec::new();
        let secret_cache_ttl = take(
            &mut problems,
            "SECRET_CACHE_TTL_SECONDS",
            cache_ttl_from(get("SECRET_CACHE_TTL_SECONDS")),
            Duration::from_secs(300),
        );
        let time_budget = take(
            &mut problems,
            "TIME_BUDGET_SECONDS",
            time_budget_from(get("TIME_BUDGET_SECONDS")),
            crate::flow::budget::DEFAULT_TIME_BUDGET,
        );
        let queues = queued_delivery(
            get("DELIVERY"),
            get("QUEUE_URL"),
            get("DEAD_LETTER_QUEUE_URL"),
        )
        .map(|queues| {
            queues.map(|(queue_url, dead_letter_url, every_event)| Queues {
                queue_url,
                dead_letter_url,
                every_event,
            })
        });
        let queues = take(&mut problems, "DELIVERY", queues, None);
        // Queued delivery applies one alert's events one at a time: no concurrent creations
        // to wait for, unless asked.
        let default_settle = if queues.as_ref().is_some_and(|q| q.every_event) {
            Duration::ZERO
        } else {
            DEFAULT_SETTLE_DELAY
        };
        let settle_delay = take(
            &mut problems,
            "SETTLE_DELAY_MS",
            settle_delay_from(get("SETTLE_DELAY_MS")).map(|ms| ms.unwrap_or(default_settle)),
            default_settle,
        );
        if !settle_delay.is_zero() && settle_delay >= time_budget {
            problems.push(ConfigProblem {
                variable: "SETTLE_DELAY_MS",
                problem: format!(
                    "SETTLE_DELAY_MS ({} ms) is not shorter than the time budget \
                     (TIME_BUDGET_SECONDS, {} ms): a creator could never wait it",
                    settle_delay.as_millis(),
                    time_budget.as_millis()
                ),
            });
        }
        Self {
            secret_cache_ttl,
            time_budget,
            queues,
            settle_delay,
            defaults: Settings::from_environment(variables),
            problems,
        }
    }

    /// Every problem, `DEFAULT_SETTINGS`'s too, one line each, for `check`.
    pub fn all_problems(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.problems.iter().map(ToString::to_string).collect();
        if let Err(problem) = &self.defaults {
            lines.push(problem.to_string());
        }
        lines
    }

    /// What every call is answered (after authentication) when a variable cannot be used.
    pub fn misconfiguration(&self) -> Option<String> {
        (!self.problems.is_empty()).then(|| {
            self.problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        })
    }
}

/// The value read, or `default` with the problem noted.
fn take<T>(
    problems: &mut Vec<ConfigProblem>,
    variable: &'static str,
    read: Result<T, String>,
    default: T,
) -> T {
    read.unwrap_or_else(|problem| {
        problems.push(ConfigProblem { variable, problem });
        default
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(variables: &[(&str, &str)]) -> Config {
        Config::from_environment(
            variables
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
    }

    #[test]
    fn nothing_set_is_the_documented_defaults_and_no_problem() {
        let read = config(&[]);
        assert!(read.problems.is_empty() && read.defaults.is_ok());
        assert_eq!(read.time_budget, Duration::from_secs(5));
        assert_eq!(read.secret_cache_ttl, Duration::from_secs(300));
        assert_eq!(read.settle_delay, Duration::from_secs(1));
        assert_eq!(read.queues, None);
        assert_eq!(read.misconfiguration(), None);
    }

    #[test]
    fn each_unusable_variable_is_a_problem_that_names_it_not_a_silent_default() {
        let read = config(&[
            ("SECRET_CACHE_TTL_SECONDS", "5m"),
            ("TIME_BUDGET_SECONDS", "ten"),
            ("SETTLE_DELAY_MS", "a second"),
            ("DELIVERY", "fifo"),
            ("DEFAULT_SETTINGS", "asignment_group=Network"),
            ("DEFAULT_REGION", "eu-west-1"),
        ]);
        let variables: Vec<&str> = read.problems.iter().map(|p| p.variable).collect();
        assert_eq!(
            variables,
            [
                "SECRET_CACHE_TTL_SECONDS",
                "TIME_BUDGET_SECONDS",
                "DELIVERY",
                "SETTLE_DELAY_MS"
            ]
        );
        for problem in &read.problems {
            assert!(problem.problem.contains(problem.variable), "{problem:?}");
        }
        let lines = read.all_problems();
        assert_eq!(lines.len(), 5, "{lines:#?}");
        assert!(lines[4].contains("DEFAULT_SETTINGS"), "{lines:#?}");
        assert!(
            !lines.iter().any(|line| line.contains("DEFAULT_REGION")),
            "another program's variable"
        );
        assert!(read
            .misconfiguration()
            .unwrap()
            .contains("TIME_BUDGET_SECONDS"));
    }

    #[test]
    fn a_settle_delay_the_budget_cannot_hold_is_a_problem_and_queued_delivery_waits_none() {
        let read = config(&[("SETTLE_DELAY_MS", "6000"), ("TIME_BUDGET_SECONDS", "5")]);
        assert_eq!(read.problems.len(), 1);
        assert!(read.problems[0]
            .problem
            .contains("not shorter than the time budget"));
        let queued = config(&[
            ("DELIVERY", "queued"),
            ("QUEUE_URL", "https://q"),
            ("DEAD_LETTER_QUEUE_URL", "https://dlq"),
        ]);
        assert_eq!(queued.settle_delay, Duration::ZERO);
        assert!(queued.queues.is_some() && queued.problems.is_empty());
    }
}
