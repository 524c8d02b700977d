// The tables of migrations/, as diesel sees them.

diesel::table! {
    monitors (id) {
        id -> Integer,
        provider -> Text,
        service -> Text,
        channel -> Text,
        /// The model of one series of a multi-model monitor; '' otherwise.
        model -> Text,
    }
}

diesel::table! {
    /// Append-only, no index but the id (the rowid itself, never reused): id order is (nearly)
    /// time order, which purging relies on.
    probes (id) {
        id -> BigInt,
        monitor_id -> Integer,
        ts -> BigInt,
        status -> SmallInt,
        latency_ms -> Integer,
        reason -> SmallInt,
        http_code -> Integer,
        ttfb_ms -> Nullable<Integer>,
        ttft_ms -> Nullable<Integer>,
        tps_x10 -> Nullable<Integer>,
        model_id -> Nullable<Integer>,
        prompt_tokens -> Nullable<BigInt>,
        completion_tokens -> Nullable<BigInt>,
        detail -> Nullable<Text>,
        connect_ms -> Nullable<Integer>,
        maintenance -> SmallInt,
        node_id -> Integer,
        /// What the probe cost, nano-USD; NULL without a price or a reported usage.
        cost_nanos -> Nullable<BigInt>,
    }
}

diesel::table! {
    rollups (monitor_id, node_id, hour) {
        monitor_id -> Integer,
        node_id -> Integer,
        hour -> BigInt,
        green -> BigInt,
        yellow -> BigInt,
        red -> BigInt,
        latency_sum -> BigInt,
        latency_sketch -> Binary,
        ttft_sketch -> Binary,
        maintenance -> BigInt,
        /// The writing node's counter at the last write (what other nodes read after).
        seq -> BigInt,
        /// The red and yellow probes' reasons: `code:count,...` (see `rollup::Reasons`).
        reasons -> Text,
        /// The sum of the hour's probes' costs, nano-USD; NULL when none had one.
        cost_nanos -> Nullable<BigInt>,
    }
}

diesel::table! {
    latest (monitor_id, node_id) {
        monitor_id -> Integer,
        node_id -> Integer,
        ts -> BigInt,
        probe_id -> BigInt,
        seq -> BigInt,
        interval_s -> Nullable<Integer>,
    }
}

diesel::table! {
    nodes (id) {
        id -> Integer,
        name -> Text,
    }
}

diesel::table! {
    models (id) {
        id -> Integer,
        name -> Text,
    }
}

diesel::table! {
    meta (key) {
        key -> Text,
        value -> Text,
    }
}

diesel::table! {
    alert_state (monitor_id) {
        monitor_id -> Integer,
        state -> Text,
    }
}

diesel::table! {
    events (id) {
        id -> BigInt,
        time -> BigInt,
        kind -> Text,
        provider -> Nullable<Text>,
        service -> Nullable<Text>,
        channel -> Nullable<Text>,
        reason -> Nullable<Text>,
        detail -> Nullable<Text>,
        node -> Nullable<Text>,
    }
}

diesel::table! {
    outbox (id) {
        id -> BigInt,
        event_id -> BigInt,
        channel -> Text,
        message -> Text,
        created_at -> BigInt,
        not_before -> BigInt,
        state -> SmallInt,
        attempts -> Integer,
        last_error -> Nullable<Text>,
        done_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    /// Each run of consecutive red probes of a monitor on a node (outside maintenance): from
    /// its first red probe to the first probe after it that is not red (`end_ts`; NULL while it
    /// lasts). An incident is a run of at least the monitor's `failure_threshold` probes.
    red_runs (monitor_id, node_id, start_ts) {
        monitor_id -> Integer,
        node_id -> Integer,
        start_ts -> BigInt,
        end_ts -> Nullable<BigInt>,
        last_ts -> BigInt,
        reds -> BigInt,
        /// `code:count,...` of its probes' reasons.
        reasons -> Text,
        /// The monitor's interval on that node at its last red probe, seconds.
        interval_s -> Nullable<Integer>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    red_runs,
    monitors,
    nodes,
    probes,
    rollups,
    latest,
    models,
    meta,
    alert_state,
    events,
    outbox
);
