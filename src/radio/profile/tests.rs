use super::*;
use crate::dissect::testkit::TestResult;

#[test]
fn every_builtin_parses_and_cites_every_parameter() {
    for (name, text) in BUILTIN_SOURCES {
        let p = Profile::parse(text, name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(p.name, name);
        assert!(p.params.len() >= 8, "{name} has {} params", p.params.len());
        assert!(p.params.iter().all(|i| !i.source.trim().is_empty()));
    }
    assert_eq!(Profile::builtins().len(), BUILTIN_SOURCES.len());
}

#[test]
fn lte_matches_aro_lte_conf() -> TestResult {
    let p = Profile::builtin("lte").ok_or("no builtin profile lte")?;
    assert_eq!(p.promotion, Promotion { duration_s: 0.26, power_w: 1.21 });
    assert_eq!(p.connected.power_w, 1.2);
    assert_eq!(p.connected.inactivity_s, 0.1);
    assert!((p.connected.up_j_per_bit - 438.39e-9).abs() < 1e-15);
    assert!((p.connected.down_j_per_bit - 51.97e-9).abs() < 1e-15);
    assert_eq!(p.tail.len(), 2);
    // short DRX: 1.06 W with a 2 ms ping at 1.68 W every 20 ms
    assert!((p.tail[0].power_w - (1.06 + 0.62 * 0.1)).abs() < 1e-12);
    // long DRX: same ping every 40 ms
    assert!((p.tail[1].power_w - (1.06 + 0.62 * 0.05)).abs() < 1e-12);
    assert_eq!(p.tail[1].duration_s, 10.0);
    // idle: 0 W except 43 ms paging at 0.594 W every 1.28 s (not paging power all the time)
    assert!((p.idle_power_w - 0.594 * 0.043 / 1.28).abs() < 1e-12);
    assert!((p.connected_tail_s() - 10.12).abs() < 1e-12);
    Ok(())
}

#[test]
fn umts_uses_the_average_fach_to_dch_promotion() -> TestResult {
    let p = Profile::builtin("3g").ok_or("no builtin profile 3g")?;
    assert_eq!(p.promotion, Promotion { duration_s: 2.0, power_w: 0.65 });
    assert_eq!(p.connected.power_w, 1.30);
    assert_eq!(p.connected.inactivity_s, 4.0);
    let fach = &p.tail[0];
    assert_eq!((fach.name.as_str(), fach.duration_s, fach.power_w), ("fach", 10.0, 0.30));
    // ARO's loader reads the maximum (3.0 s) here; the average is 1.5 s.
    assert_eq!(fach.promotion, Some(Promotion { duration_s: 1.5, power_w: 0.80 }));
    Ok(())
}

#[test]
fn cellular_iot_profiles_use_nrf9160_figures() -> TestResult {
    let nb = Profile::builtin("nb-iot").ok_or("no builtin profile nb-iot")?;
    assert!((nb.idle_power_w - 2.7e-6 * 3.7).abs() < 1e-15);
    let edrx = nb.tail.iter().find(|s| !s.radio_on).ok_or("nb-iot: no radio-off tail state")?;
    assert!((edrx.power_w - 37e-6 * 3.7).abs() < 1e-15);
    assert!(nb.release_assistance.is_some());
    let m = Profile::builtin("lte-m").ok_or("no builtin profile lte-m")?;
    assert!(
        (m.tail.iter().find(|s| !s.radio_on).ok_or("lte-m: no radio-off tail state")?.power_w - 18e-6 * 3.7).abs()
            < 1e-15
    );
    Ok(())
}

fn field_error(text: &str) -> String {
    match Profile::parse(text, "user.toml") {
        Err(ProfileError::Field { field, .. }) => field,
        other => panic!("expected a field error, got {other:?}"),
    }
}

#[test]
fn bad_profiles_name_the_field() {
    let good = BUILTIN_SOURCES[0].1;
    assert_eq!(field_error(&good.replace("duration = { s = 0.26", "duration = { q = 0.26")), "promotion.duration");
    assert_eq!(field_error(&good.replace("inactivity = { s = 0.1", "inactivity = { s = -0.1")), "connected.inactivity");
    assert_eq!(field_error(&good.replace("[link]", "[link]\nspeed = 3")), "link.speed");
    assert_eq!(field_error(&good.replace(", source = \"AT&T ARO lte.conf T_PROMOTION\"", "")), "promotion.duration");
    assert_eq!(field_error(&good.replace("up = {", "upp = {")), "link.upp");
    let no_voltage: String = good.lines().filter(|l| !l.starts_with("voltage")).collect::<Vec<_>>().join("\n");
    assert_eq!(field_error(&no_voltage), "voltage");
    assert!(matches!(Profile::parse("name = ", "x"), Err(ProfileError::Syntax { .. })));
    assert!(matches!(Profile::resolve("no-such-profile"), Err(ProfileError::Unknown(..))));
    assert_eq!(field_error(&good.replace("up = { mbps = 5.64", "up = { bps = 0.001")), "link.up");
    assert_eq!(field_error(&good.replace("{ v = 3.7", "{ v = 0")), "voltage");
    assert_eq!(field_error(&good.replace("ping_on = { s = 0.002", "ping_on = { s = 2")), "tail[0] (short_drx).ping_on");
    let released_then_on = format!(
        "{good}\n[[tail]]\nname = \"x\"\nradio_on = false\nduration = {{ s = 1, source = \"a\" }}\npower = {{ w = 0, source = \"a\" }}\n"
    );
    assert!(Profile::parse(&released_then_on, "user.toml").is_ok());
    let on_after_released = format!(
        "{released_then_on}[[tail]]\nname = \"y\"\nduration = {{ s = 1, source = \"a\" }}\npower = {{ w = 0, source = \"a\" }}\n"
    );
    assert_eq!(field_error(&on_after_released), "tail (y)");
    let msg = Profile::parse(&good.replace("rtt = { ms", "rtt = { kbps"), "user.toml").unwrap_err().to_string();
    assert!(msg.contains("link.rtt"), "{msg}");
}

#[test]
fn user_profile_loads_from_a_file() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("mine.toml");
    std::fs::write(&path, BUILTIN_SOURCES[0].1.replace("name = \"lte\"", "name = \"mine\""))?;
    let p = Profile::resolve(path.to_str().ok_or("temporary path is not UTF-8")?)?;
    assert_eq!(p.name, "mine");
    assert_eq!(p.tail, Profile::builtin("lte").ok_or("no builtin profile lte")?.tail);
    Ok(())
}

#[test]
fn list_shows_every_parameter_with_its_source() {
    let text = list_text();
    for p in Profile::builtins() {
        assert!(text.contains(&format!("{}: {} -- ", p.name, p.device_class)));
        for info in &p.params {
            assert!(text.contains(&info.source), "{}: {}", p.name, info.field);
        }
    }
    assert!(text.contains("T_PROMOTION"));
    assert!(text.contains("nRF9160"));
}
