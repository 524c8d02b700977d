//! `llm-monitor alert-test CHANNEL` through every channel type, against fake receivers on
//! 127.0.0.1 (and a real SMTP server): the payload each receiver's API needs, the signatures,
//! each receiver's own rule for "accepted" as the exit code, secrets from the environment, and
//! no secret in what the binary prints.

use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::support::receiver::{self, Reply, Request};
use crate::support::{wait_for, Workspace, BIN};

/// What one run of the binary did.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// A child process killed when dropped, so a run that hangs past its deadline does not outlive
/// the test.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the binary with `args` on the workspace's config, with `env` added to an environment
/// cleared of any `MONITOR_*` the test runner may have, and debug logging.
fn run(ws: &Workspace, args: &[&str], env: &[(&str, &str)]) -> Run {
    use std::io::Read;
    let mut command = Command::new(BIN);
    command.arg("--config").arg(ws.config_path()).args(args).current_dir(ws.path());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("MONITOR_") {
            command.env_remove(name);
        }
    }
    command.env("RUST_LOG", "debug").envs(env.iter().copied());
    let child = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut child = KillOnDrop(child);
    let readers =
        [Box::new(child.0.stdout.take().unwrap()) as Box<dyn Read + Send>, Box::new(child.0.stderr.take().unwrap())]
            .map(|mut stream| {
                std::thread::spawn(move || {
                    let mut text = String::new();
                    let _ = stream.read_to_string(&mut text);
                    text
                })
            });
    // A send gets 10 s, an SMTP exchange 30 s.
    let status =
        wait_for(&format!("llm-monitor {}", args.join(" ")), Duration::from_secs(60), || child.0.try_wait().unwrap());
    let [stdout, stderr] = readers.map(|reader| reader.join().unwrap());
    Run { code: status.code().expect("exited, not killed"), stdout, stderr }
}

fn alert_test(ws: &Workspace, channel: &str, env: &[(&str, &str)]) -> Run {
    run(ws, &["alert-test", channel], env)
}

/// A workspace whose config has these channels (YAML flow mappings, one a line) and no
/// monitor.
fn workspace(channels: &[String]) -> Workspace {
    let mut config = String::from("public_url: \"https://status.example.com\"\nalerts:\n  channels:\n");
    for channel in channels {
        config.push_str(&format!("    - {channel}\n"));
    }
    config.push_str("monitors: []\n");
    Workspace::new(&config)
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Asserts the run exited with `code`, showing everything it printed if not.
fn assert_exit(run: &Run, code: i32) {
    assert_eq!(run.code, code, "exit code; it printed:\n{}", run.output());
}

/// The sorted keys of a JSON object.
fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> =
        value.as_object().unwrap_or_else(|| panic!("not an object: {value}")).keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

const TITLE: &str = "Test message from llm-monitor";

/// The plain text of the test message: the title, then the body, which ends with the link.
fn assert_test_text(text: &str) {
    assert!(text.starts_with(&format!("{TITLE}\nIf you can read this, the channel works.\nTime: ")), "{text}");
    assert!(text.ends_with("\nhttps://status.example.com"), "{text}");
}

#[test]
fn webhook_posts_the_documented_json_signed_with_x_signature() {
    let hook = receiver::answering(200, "");
    let secret = "whsec-file-0123456789";
    let ws = workspace(&[format!(
        "{{name: ops, type: webhook, url: \"{}/hooks/incoming\", secret: \"{secret}\"}}",
        hook.base
    )]);
    let run = alert_test(&ws, "ops", &[]);
    assert_exit(&run, 0);
    assert!(run.stdout.contains("ops (webhook): HTTP 200\nops: accepted"), "{}", run.stdout);

    let request = hook.only_request();
    assert_eq!((request.method.as_str(), request.path.as_str()), ("POST", "/hooks/incoming"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert!(request.header("user-agent").unwrap().starts_with("llm-monitor/"), "{:?}", request.headers);
    assert_eq!(request.header("x-llm-monitor-event-id"), Some("0"));
    let expected = format!("sha256={}", hex::encode(hmac_sha256(secret.as_bytes(), &request.body)));
    assert_eq!(request.header("x-signature"), Some(expected.as_str()));

    let body = request.json();
    assert_eq!(
        keys(&body),
        [
            "detail",
            "duration_s",
            "event",
            "id",
            "monitor",
            "reason",
            "resolved_at",
            "started_at",
            "status",
            "text",
            "title",
            "url"
        ]
    );
    assert_eq!((&body["id"], &body["event"], &body["title"]), (&json!(0), &json!("test"), &json!(TITLE)));
    assert_eq!(body["url"], "https://status.example.com");
    for absent in ["monitor", "status", "reason", "detail", "started_at", "resolved_at", "duration_s"] {
        assert!(body[absent].is_null(), "{absent}: {body}");
    }
    assert_test_text(&format!("{TITLE}\n{}", body["text"].as_str().unwrap()));
}

#[test]
fn a_webhook_answering_500_is_not_accepted() {
    let hook = receiver::answering(500, r#"{"error":"database is down"}"#);
    let ws = workspace(&[format!("{{name: ops, type: webhook, url: \"{}/hook\"}}", hook.base)]);
    let run = alert_test(&ws, "ops", &[]);
    assert_exit(&run, 1);
    assert!(
        run.stdout.contains(r#"ops (webhook): HTTP 500: {"error":"database is down"}"#)
            && run.stdout.contains("ops: NOT accepted"),
        "{}",
        run.stdout
    );
    assert_eq!(hook.only_request().header("x-signature"), None, "unsigned without a secret");
}

#[test]
fn slack_gets_one_text_field() {
    let slack = receiver::answering(200, "");
    let ws = workspace(&[format!(
        "{{name: team, type: slack, url: \"{}/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX\"}}",
        slack.base
    )]);
    assert_exit(&alert_test(&ws, "team", &[]), 0);
    let request = slack.only_request();
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX")
    );
    let body = request.json();
    assert_eq!(keys(&body), ["text"]);
    assert_test_text(body["text"].as_str().unwrap());
}

#[test]
fn discord_gets_content_and_allows_no_mentions() {
    let discord = receiver::answering(204, "");
    let ws = workspace(&[format!(
        "{{name: chat, type: discord, url: \"{}/api/webhooks/123/abcdefghijklmnopqrstuvwxyz\"}}",
        discord.base
    )]);
    let run = alert_test(&ws, "chat", &[]);
    assert_exit(&run, 0);
    assert!(run.stdout.contains("chat (discord): HTTP 204\n"), "{}", run.stdout);
    let body = discord.only_request().json();
    assert_eq!(keys(&body), ["allowed_mentions", "content"]);
    assert_eq!(body["allowed_mentions"], json!({"parse": []}));
    assert_test_text(body["content"].as_str().unwrap());
}

#[test]
fn telegram_sends_html_to_the_bot_path() {
    let telegram = receiver::answering(200, r#"{"ok":true,"result":{"message_id":1}}"#);
    let token = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";
    let ws = workspace(&[format!(
        "{{name: tg, type: telegram, bot_token: \"{token}\", chat_id: -1001234567, api_url: \"{}/\"}}",
        telegram.base
    )]);
    let run = alert_test(&ws, "tg", &[]);
    assert_exit(&run, 0);
    assert!(run.stdout.contains("tg (telegram): HTTP 200: {\"ok\":true"), "{}", run.stdout);
    let request = telegram.only_request();
    assert_eq!(request.path, format!("/bot{token}/sendMessage"));
    let body = request.json();
    assert_eq!(keys(&body), ["chat_id", "disable_web_page_preview", "parse_mode", "text"]);
    assert_eq!(
        (&body["chat_id"], &body["parse_mode"], &body["disable_web_page_preview"]),
        (&json!("-1001234567"), &json!("HTML"), &json!(true))
    );
    let text = body["text"].as_str().unwrap();
    assert!(text.starts_with(&format!("<b>{TITLE}</b>\nIf you can read this")), "{text}");
}

#[test]
fn telegram_needs_ok_true_even_in_a_200() {
    let telegram =
        receiver::answering(200, r#"{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}"#);
    let ws = workspace(&[format!(
        "{{name: tg, type: telegram, bot_token: \"123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw\", chat_id: \"42\", api_url: \"{}\"}}",
        telegram.base
    )]);
    let run = alert_test(&ws, "tg", &[]);
    assert_exit(&run, 1);
    assert!(run.stdout.contains("chat not found") && run.stdout.contains("tg: NOT accepted"), "{}", run.stdout);
}

#[test]
fn feishu_signs_with_timestamp_and_sign_in_the_body() {
    let feishu = receiver::answering(200, r#"{"code":0,"msg":"success","data":{}}"#);
    let secret = "feishu-secret-0123456789";
    let ws = workspace(&[format!(
        "{{name: lark, type: feishu, url: \"{}/open-apis/bot/v2/hook/6f5b2c1e-0000-4000-8000-000000000000\", secret: \"{secret}\"}}",
        feishu.base
    )]);
    let before = unix_now();
    let run = alert_test(&ws, "lark", &[]);
    let after = unix_now();
    assert_exit(&run, 0);
    let request = feishu.only_request();
    assert_eq!(request.path, "/open-apis/bot/v2/hook/6f5b2c1e-0000-4000-8000-000000000000");
    let body = request.json();
    assert_eq!(keys(&body), ["content", "msg_type", "sign", "timestamp"]);
    assert_eq!(body["msg_type"], "text");
    assert_test_text(body["content"]["text"].as_str().unwrap());
    // Feishu takes the time in seconds, as a string, and signs an empty message with the key
    // "<timestamp>\n<secret>".
    let timestamp = body["timestamp"].as_str().expect("timestamp is a string");
    let seconds: i64 = timestamp.parse().unwrap();
    assert!((before..=after).contains(&seconds), "{seconds} not in {before}..={after}");
    assert_eq!(body["sign"], base64(&hmac_sha256(format!("{timestamp}\n{secret}").as_bytes(), b"")));
}

#[test]
fn feishu_code_19021_in_a_200_is_not_accepted() {
    let feishu = receiver::answering(200, r#"{"code":19021,"msg":"sign match fail"}"#);
    let ws = workspace(&[format!(
        "{{name: lark, type: feishu, url: \"{}/open-apis/bot/v2/hook/x\", secret: \"wrong-secret-0123\"}}",
        feishu.base
    )]);
    let run = alert_test(&ws, "lark", &[]);
    assert_exit(&run, 1);
    assert!(
        run.stdout.contains(r#"lark (feishu): HTTP 200: {"code":19021,"msg":"sign match fail"}"#)
            && run.stdout.contains("lark: NOT accepted"),
        "{}",
        run.stdout
    );
}

#[test]
fn dingtalk_signs_the_url_with_timestamp_and_sign() {
    let dingtalk = receiver::answering(200, r#"{"errcode":0,"errmsg":"ok"}"#);
    let secret = "SEC0123456789abcdef0123456789abcdef";
    let ws = workspace(&[format!(
        "{{name: ding, type: dingtalk, url: \"{}/robot/send?access_token=abcdef0123456789\", secret: \"{secret}\"}}",
        dingtalk.base
    )]);
    let before = unix_now() * 1_000;
    let run = alert_test(&ws, "ding", &[]);
    let after = unix_now() * 1_000 + 999;
    assert_exit(&run, 0);
    let request = dingtalk.only_request();
    assert_eq!(request.path, "/robot/send");
    assert_eq!(request.query_param("access_token").as_deref(), Some("abcdef0123456789"));
    // Milliseconds; the key is the secret, the message "<timestamp>\n<secret>".
    let timestamp = request.query_param("timestamp").expect("a timestamp parameter");
    let millis: i64 = timestamp.parse().unwrap();
    assert!((before..=after).contains(&millis), "{millis} not in {before}..={after}");
    let sign = request.query_param("sign").expect("a sign parameter");
    assert_eq!(sign, base64(&hmac_sha256(secret.as_bytes(), format!("{timestamp}\n{secret}").as_bytes())));
    let body = request.json();
    assert_eq!(keys(&body), ["msgtype", "text"]);
    assert_eq!((&body["msgtype"], keys(&body["text"])), (&json!("text"), vec!["content"]));
    assert_test_text(body["text"]["content"].as_str().unwrap());
}

#[test]
fn wecom_gets_a_text_message_at_its_key_url() {
    let wecom = receiver::answering(200, r#"{"errcode":0,"errmsg":"ok"}"#);
    let ws = workspace(&[format!(
        "{{name: wx, type: wecom, url: \"{}/cgi-bin/webhook/send?key=693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa\"}}",
        wecom.base
    )]);
    assert_exit(&alert_test(&ws, "wx", &[]), 0);
    let request = wecom.only_request();
    assert_eq!(request.path, "/cgi-bin/webhook/send");
    assert_eq!(request.query_param("key").as_deref(), Some("693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"));
    let body = request.json();
    assert_eq!(keys(&body), ["msgtype", "text"]);
    assert_eq!(body["msgtype"], "text");
    assert_test_text(body["text"]["content"].as_str().unwrap());
}

#[test]
fn dingtalk_and_wecom_need_errcode_zero_even_in_a_200() {
    let robot = receiver::answering(200, r#"{"errcode":310000,"errmsg":"keywords not in content"}"#);
    let ws = workspace(&[
        format!("{{name: ding, type: dingtalk, url: \"{}/robot/send?access_token=abcdef0123456789\"}}", robot.base),
        format!("{{name: wx, type: wecom, url: \"{}/cgi-bin/webhook/send?key=693a91f6\"}}", robot.base),
    ]);
    for channel in ["ding", "wx"] {
        let run = alert_test(&ws, channel, &[]);
        assert_exit(&run, 1);
        assert!(run.stdout.contains("\"errcode\":310000"), "{}", run.stdout);
        assert!(run.stdout.contains(&format!("{channel}: NOT accepted")), "{}", run.stdout);
    }
    assert_eq!(robot.requests().len(), 2);
}

#[test]
fn ntfy_publishes_json_to_the_server_root_with_a_bearer_token() {
    let ntfy = receiver::answering(200, r#"{"id":"hwQ2YpKdmg","event":"message","topic":"llm-alerts"}"#);
    let ws = workspace(&[format!(
        "{{name: push, type: ntfy, url: \"{}/ntfy/llm-alerts\", token: \"tk_ntfytoken0123456789\"}}",
        ntfy.base
    )]);
    assert_exit(&alert_test(&ws, "push", &[]), 0);
    let request = ntfy.only_request();
    // ntfy takes JSON at its root (here behind a /ntfy/ prefix), the topic in the body.
    assert_eq!((request.method.as_str(), request.path.as_str()), ("POST", "/ntfy/"));
    assert_eq!(request.header("authorization"), Some("Bearer tk_ntfytoken0123456789"));
    let body = request.json();
    assert_eq!(keys(&body), ["click", "message", "priority", "tags", "title", "topic"]);
    assert_eq!(
        (&body["topic"], &body["title"], &body["priority"], &body["tags"], &body["click"]),
        (&json!("llm-alerts"), &json!(TITLE), &json!(3), &json!([]), &json!("https://status.example.com"))
    );
    assert_test_text(&format!("{TITLE}\n{}", body["message"].as_str().unwrap()));
}

#[test]
fn email_goes_through_a_real_smtp_server() {
    let Some(smtp) = receiver::smtp_server() else { return };
    let ws = workspace(&[format!(
        "{{name: mail, type: email, host: 127.0.0.1, port: {}, tls: none, from: \"llm-monitor <monitor@example.com>\", \
         to: [\"ops@example.com\", \"Oncall <oncall@example.com>\"]}}",
        smtp.port
    )]);
    let run = alert_test(&ws, "mail", &[]);
    assert_exit(&run, 0);
    assert!(run.stdout.contains("mail (email): SMTP 250 2.0.0 queued by the test server"), "{}", run.stdout);
    let mail = smtp.wait_mail(Duration::from_secs(10));
    assert_eq!(mail.mail_from, "monitor@example.com");
    assert_eq!(mail.rcpt_tos, ["ops@example.com", "oncall@example.com"]);
    assert_eq!(mail.header("From").as_deref(), Some("llm-monitor <monitor@example.com>"));
    assert_eq!(mail.header("To").as_deref(), Some("ops@example.com, Oncall <oncall@example.com>"));
    assert_eq!(mail.header("Subject").as_deref(), Some(TITLE));
    assert!(mail.header("Content-Type").unwrap().starts_with("text/plain"), "{}", mail.data);
    assert!(mail.data.contains("If you can read this, the channel works."), "{}", mail.data);
}

/// Through a channel's proxy: an email over an HTTP CONNECT tunnel to a real SMTP server, and
/// a webhook whose proxy refuses our credentials, which says so.
#[test]
fn email_and_webhooks_go_through_the_channels_proxy() {
    let hook = receiver::answering(200, "");
    let good = crate::support::proxy::http_connect(Some(("mailer", "right-pass-1")));
    let strict = crate::support::proxy::http_connect(Some(("mailer", "right-pass-1")));
    let smtp = receiver::smtp_server();
    let mut channels = vec![format!(
        "{{name: ops, type: webhook, url: \"{}/hook\", proxy: \"http://mailer:wrong-pass-9@127.0.0.1:{}\"}}",
        hook.base, strict.port
    )];
    if let Some(smtp) = &smtp {
        channels.push(format!(
            "{{name: mail, type: email, host: 127.0.0.1, port: {}, tls: none, from: \"monitor@example.com\", to: [\"ops@example.com\"], \
             proxy: \"http://mailer:right-pass-1@127.0.0.1:{}\"}}",
            smtp.port, good.port
        ));
        channels.push(format!(
            "{{name: mail-starttls, type: email, host: 127.0.0.1, port: {}, tls: starttls, from: \"monitor@example.com\", \
             to: [\"ops@example.com\"], proxy: \"http://mailer:right-pass-1@127.0.0.1:{}\"}}",
            smtp.port, good.port
        ));
    }
    let ws = workspace(&channels);
    let run = alert_test(&ws, "ops", &[]);
    assert_exit(&run, 1);
    assert!(run.stdout.contains("ops (webhook): proxy error: CONNECT: HTTP 407"), "{}", run.stdout);
    assert!(hook.requests().is_empty());
    assert!(!format!("{}{}", run.stdout, run.stderr).contains("wrong-pass-9"));
    let Some(smtp) = smtp else { return };
    let run = alert_test(&ws, "mail", &[]);
    assert_exit(&run, 0);
    assert!(run.stdout.contains("mail (email): SMTP 250"), "{}", run.stdout);
    assert_eq!(smtp.wait_mail(Duration::from_secs(10)).rcpt_tos, ["ops@example.com"]);
    assert!(good.tunnels().iter().any(|t| t.target == format!("127.0.0.1:{}", smtp.port)), "{:?}", good.tunnels());
    // STARTTLS is required through the tunnel as without one: this server offers none, so
    // nothing is sent in the clear.
    let tunnels = good.tunnels().len();
    let run = alert_test(&ws, "mail-starttls", &[]);
    assert_exit(&run, 1);
    assert!(run.stdout.contains("mail-starttls (email): SMTP") && run.stdout.contains("STARTTLS"), "{}", run.stdout);
    assert_eq!(good.tunnels().len(), tunnels + 1, "it went through the proxy");
}

/// Implicit TLS (port 465) through a proxy: the first bytes through the tunnel are our
/// ClientHello for the server's name (this server speaks no TLS, so the send fails, and says so).
#[test]
fn smtps_through_a_proxy_starts_with_tls_to_the_server() {
    let proxy = crate::support::proxy::socks5(None);
    let server = crate::support::upstream::raw_server(b"");
    let ws = workspace(&[format!(
        "{{name: smtps, type: email, host: localhost, port: {}, tls: tls, from: \"monitor@example.com\", to: [\"ops@example.com\"], \
         proxy: \"socks5h://127.0.0.1:{}\"}}",
        server.port, proxy.port
    )]);
    let run = alert_test(&ws, "smtps", &[]);
    assert_exit(&run, 1);
    assert!(run.stdout.contains("smtps (email): SMTP TLS failed"), "{}", run.stdout);
    let hello = server.first_bytes.lock().unwrap().first().cloned().expect("the server was reached");
    assert_eq!(&hello[..2], &[0x16, 0x03], "not a TLS handshake: {hello:?}");
    assert!(hello.windows(9).any(|w| w == b"localhost"), "the SNI is the server's name");
    assert!(proxy.tunnels().iter().any(|t| t.target == format!("localhost:{}", server.port)));
}

#[test]
fn secrets_given_only_in_the_environment_are_used() {
    let hook = receiver::answering(200, "");
    let telegram = receiver::answering(200, r#"{"ok":true}"#);
    let ws = workspace(&[
        format!("{{name: ops, type: webhook, url: \"{}/hook\"}}", hook.base),
        format!("{{name: tg, type: telegram, chat_id: \"42\", api_url: \"{}\"}}", telegram.base),
    ]);
    let secret = "from-env-secret-0123456789";
    let token = "987654321:AAFromTheEnvironmentToken0123456";
    let env = [("MONITOR_ALERT_OPS_SECRET", secret), ("MONITOR_ALERT_TG_BOT_TOKEN", token)];

    assert_exit(&alert_test(&ws, "ops", &env), 0);
    let request = hook.only_request();
    let expected = format!("sha256={}", hex::encode(hmac_sha256(secret.as_bytes(), &request.body)));
    assert_eq!(request.header("x-signature"), Some(expected.as_str()));

    assert_exit(&alert_test(&ws, "tg", &env), 0);
    assert_eq!(telegram.only_request().path, format!("/bot{token}/sendMessage"));
}

#[test]
fn check_passes_with_a_required_url_given_only_in_the_environment() {
    let ws = workspace(&["{name: ops-hook, type: slack}".to_string()]);
    let without = run(&ws, &["check"], &[]);
    assert_exit(&without, 1);
    assert!(
        without.stderr.contains("url: is required for type slack (or set MONITOR_ALERT_OPS_HOOK_URL)"),
        "{}",
        without.stderr
    );
    let url = "https://hooks.slack.com/services/T0/B0/XXXXXXXXXXXXXXXXXXXXXXXX";
    let with = run(&ws, &["check"], &[("MONITOR_ALERT_OPS_HOOK_URL", url)]);
    assert_exit(&with, 0);
    assert!(with.stdout.contains(": OK, 0 monitors"), "{}", with.stdout);
    assert!(!with.output().contains("XXXXXXXXXXXXXXXXXXXXXXXX"), "{}", with.output());
}

/// A careless receiver: refuses with everything it was sent that may carry a credential (its
/// URL path and query, its Authorization header) and the signing secret it holds, first, so
/// that no cut of the answer hides them.
fn echoing(known_secret: &'static str) -> receiver::HttpReceiver {
    receiver::http(move |request: &Request| {
        let auth = request.header("authorization").unwrap_or("");
        Reply::new(403, format!("denied {}?{} auth={auth} secret={known_secret}", request.path, request.query))
    })
}

#[test]
fn no_secret_is_printed_even_when_the_receiver_echoes_it() {
    let hook_secret = "whsec-echoed-0123456789";
    let ding_secret = "SECechoed0123456789abcdef";
    let url_token = "T0KEN0123456789abcdefXYZ";
    let bot_token = "555555555:AAEchoedBotToken0123456789abc";
    let ntfy_token = "tk_echoedntfytoken0123";
    let access_token = "dingaccesstoken0123456789";
    let wecom_key = "wecomkey-0123-4567-89ab";
    let hook = echoing(hook_secret);
    let ding = echoing(ding_secret);
    let open = echoing("none");
    let ws = workspace(&[
        format!("{{name: ops, type: webhook, url: \"{}/hooks/{url_token}\", secret: \"{hook_secret}\"}}", hook.base),
        format!(
            "{{name: ding, type: dingtalk, url: \"{}/robot/send?access_token={access_token}\", secret: \"{ding_secret}\"}}",
            ding.base
        ),
        format!("{{name: tg, type: telegram, bot_token: \"{bot_token}\", chat_id: \"42\", api_url: \"{}\"}}", open.base),
        format!("{{name: push, type: ntfy, url: \"{}/llm-alerts\", token: \"{ntfy_token}\"}}", open.base),
        format!("{{name: wx, type: wecom, url: \"{}/cgi-bin/webhook/send?key={wecom_key}\"}}", open.base),
        format!("{{name: team, type: slack, url: \"{}/services/T000/B000/{url_token}\"}}", open.base),
    ]);
    let secrets = [hook_secret, ding_secret, url_token, bot_token, ntfy_token, access_token, wecom_key];
    for channel in ["ops", "ding", "tg", "push", "wx", "team"] {
        let run = alert_test(&ws, channel, &[]);
        assert_exit(&run, 1);
        // The echo was printed, with the secrets taken out.
        assert!(
            run.stdout.contains(&format!("{channel} (")) && run.stdout.contains("HTTP 403: denied /"),
            "{}",
            run.stdout
        );
        assert!(run.stdout.contains("[REDACTED]"), "{}", run.stdout);
        for secret in secrets {
            assert!(!run.output().contains(secret), "{channel}: {secret} printed:\n{}", run.output());
        }
    }
    // Each request did carry its secrets (or the echo would prove nothing).
    let carried: Vec<String> = [hook.requests(), ding.requests(), open.requests()]
        .concat()
        .iter()
        .map(|r| format!("{}?{} {}", r.path, r.query, r.header("authorization").unwrap_or("")))
        .collect();
    assert_eq!(carried.len(), 6, "{carried:#?}");
    for secret in [url_token, access_token, bot_token, ntfy_token, wecom_key] {
        assert!(carried.iter().any(|c| c.contains(secret)), "{secret} not sent: {carried:#?}");
    }
}

#[test]
fn an_unknown_channel_fails_naming_the_configured_ones() {
    let hook = receiver::answering(200, "");
    let ws = workspace(&[
        format!("{{name: ops, type: webhook, url: \"{}/hook\"}}", hook.base),
        format!("{{name: team, type: slack, url: \"{}/services/x\"}}", hook.base),
    ]);
    let run = alert_test(&ws, "pager", &[]);
    assert_exit(&run, 1);
    assert!(
        run.stderr.contains(r#"no channel named "pager" in alerts.channels (configured: ops, team)"#),
        "{}",
        run.output()
    );
    assert!(hook.requests().is_empty(), "nothing is sent: {:?}", hook.requests());

    let none = Workspace::new("monitors: []\n");
    let run = alert_test(&none, "ops", &[]);
    assert_exit(&run, 1);
    assert!(run.stderr.contains("(configured: none)"), "{}", run.output());
}
