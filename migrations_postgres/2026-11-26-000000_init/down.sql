DROP TABLE outbox, events, alert_state, meta, latest, rollups, probes, models, nodes, monitors;
