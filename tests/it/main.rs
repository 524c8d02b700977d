//! Black-box tests: the real daemon binary against an in-process fake upstream.

mod alert_channels;
mod alerts;
mod api;
mod classification;
mod config;
mod container;
mod cost;
mod history;
mod install;
mod integrity;
mod lifecycle;
mod llm;
mod models;
mod nodes;
mod package;
mod politeness;
mod prometheus;
mod proxy;
mod reload;
mod secrets;
mod store;
mod support;
mod systemd;
mod web;
