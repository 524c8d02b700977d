// The tables of migrations/, as diesel sees them.

diesel::table! {
    monitors (id) {
        id -> Integer,
        provider -> Text,
        service -> Text,
        channel -> Text,
    }
}

diesel::table! {
    results (id) {
        id -> Integer,
        monitor_id -> Integer,
        ts -> BigInt,
        status -> SmallInt,
        latency_ms -> Integer,
        reason -> Text,
        http_code -> Integer,
        detail -> Nullable<Text>,
        ttfb_ms -> Nullable<Integer>,
        ttft_ms -> Nullable<Integer>,
        tokens_per_s -> Nullable<Double>,
        model -> Nullable<Text>,
        prompt_tokens -> Nullable<BigInt>,
        completion_tokens -> Nullable<BigInt>,
    }
}

diesel::joinable!(results -> monitors (monitor_id));
diesel::allow_tables_to_appear_in_same_query!(monitors, results);
