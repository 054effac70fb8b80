//! From an iLert event to its outcome, the same whichever door it came through (the webhook
//! in direct delivery, the queue's consumer in queued delivery): the alert action's settings
//! over the deployment's defaults → the event → the policy → the secret → the incident's
//! synchronisation. Each door does only what is its own first (authentication and limits at
//! the webhook, reading the message at the queue), then hands the event here.

use crate::adapters::secrets::{Connection, ConnectionCache, NotPicked, SecretSource};
use crate::adapters::servicenow::IncidentTable;
use crate::domain::alert::AlertEvent;
use crate::domain::decision::ignored_by_policy;
use crate::domain::settings::{InvalidSetting, Settings};
use crate::flow::budget::Budget;
use crate::flow::failure::Failure;
use crate::flow::outcome::Outcome;
use crate::flow::sync::{Arrival, IncidentSync};
use crate::flow::telemetry::Summary;
use std::sync::Arc;

/// An event read and checked, or why nothing is to be done with it.
pub(crate) enum Read {
    /// A policy of the alert action says this kind of event is not published.
    Ignored(Outcome),
    /// Boxed: an event and its settings are large beside an outcome.
    Event(Box<(AlertEvent, Settings)>),
}

pub(crate) struct Intake<S, T> {
    connections: Arc<ConnectionCache<S>>,
    sync: Arc<IncidentSync<S, T>>,
    /// The deployment's defaults, or why `DEFAULT_SETTINGS` is unusable.
    defaults: Result<Settings, InvalidSetting>,
}

impl<S: SecretSource, T: IncidentTable> Intake<S, T> {
    pub(crate) fn new(
        connections: Arc<ConnectionCache<S>>,
        sync: Arc<IncidentSync<S, T>>,
        defaults: Result<Settings, InvalidSetting>,
    ) -> Self {
        Self {
            connections,
            sync,
            defaults,
        }
    }

    /// The deployment's defaults, when they are usable.
    pub(crate) fn defaults(&self) -> Option<&Settings> {
        self.defaults.as_ref().ok()
    }

    /// The settings (`query`, the alert action's, over the defaults), then the event in
    /// `body`, then the policy. `body` is the door's own verdict on the body it was given
    /// (too large, undecodable), met after the settings, as a caller would fix them.
    pub(crate) fn read(
        &self,
        query: &str,
        body: Result<&[u8], Failure>,
        summary: &mut Summary,
    ) -> Result<Read, Failure> {
        let defaults = self
            .defaults
            .as_ref()
            .map_err(|problem| Failure::BadDefaults(problem.clone()))?;
        let settings = defaults.with_query(query)?;
        if settings.instance.is_some() {
            summary.instance.clone_from(&settings.instance);
        }
        let event = AlertEvent::parse(body?)?;
        summary.alert_id = Some(event.id.to_string());
        summary.event_type = Some(event.kind.name().to_owned());
        Ok(match ignored_by_policy(&event, &settings) {
            Some(reason) => Read::Ignored(Outcome::ignored(reason)),
            None => Read::Event(Box::new((event, settings))),
        })
    }

    /// Brings the incident in line with the event, with the connection the door already
    /// chose, or the one its settings name (`instance`), read now.
    pub(crate) async fn apply(
        &self,
        event: &AlertEvent,
        settings: &Settings,
        connection: Option<Arc<Connection>>,
        arrival: Arrival,
        budget: &Budget,
    ) -> Result<Outcome, Failure> {
        let connection = match connection {
            Some(connection) => connection,
            None => self.connection_for(settings, budget).await?,
        };
        Ok(self
            .sync
            .apply(event, settings, connection, arrival, budget)
            .await?)
    }

    /// The connection `settings` name (`instance`), read now.
    async fn connection_for(
        &self,
        settings: &Settings,
        budget: &Budget,
    ) -> Result<Arc<Connection>, Failure> {
        let connections = budget
            .secrets_manager(self.connections.all())
            .await
            .map_err(Failure::SecretUnreadable)?;
        match connections.pick(settings.instance.as_deref()) {
            Ok(connection) => Ok(Arc::clone(connection)),
            // Its own entry is unusable: kept until the secret is mended, as any deployment
            // mistake, and no other instance's events wait for it.
            Err(broken @ NotPicked::Broken(_)) => Err(Failure::Deployment(broken.to_string())),
            // The deployment's default names an instance the secret lacks: retried until the
            // deployment is fixed, never dead-lettered as the event's fault.
            Err(NotPicked::Unknown(unknown))
                if settings.instance.is_some()
                    && self.defaults().and_then(|d| d.instance.as_ref())
                        == settings.instance.as_ref() =>
            {
                Err(Failure::Deployment(format!("DEFAULT_SETTINGS: {unknown}")))
            }
            Err(NotPicked::Unknown(unknown)) => Err(Failure::UnknownInstance(unknown)),
        }
    }

    /// Several queued events of one alert, with the same settings, as one write (see
    /// `IncidentSync::apply_all`), through the connection their settings name.
    pub(crate) async fn apply_all(
        &self,
        events: &[AlertEvent],
        settings: &Settings,
        arrival: Arrival,
        budget: &Budget,
    ) -> Result<Outcome, Failure> {
        let connection = self.connection_for(settings, budget).await?;
        Ok(self
            .sync
            .apply_all(events, settings, connection, arrival, budget)
            .await?)
    }
}
