//! Command-line options of the desktop app.

use std::path::PathBuf;

/// `peerchat [--server HOST:PORT] [--profile DIR] [--scale F]`
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "peerchat",
    version,
    about = "Peerchat desktop app: chat and send files directly to your friends"
)]
pub struct Options {
    /// The Peerchat server (prefilled in the login window; can be changed there).
    #[arg(long, default_value = "127.0.0.1:7878", env = "PEERCHAT_SERVER")]
    pub server: String,
    /// Profile folder (identity key, friends, history, downloads). Default: the core's
    /// default, `<data dir>/peerchat/default`.
    #[arg(long, env = "PEERCHAT_PROFILE")]
    pub profile: Option<PathBuf>,
    /// Scale the whole interface by this factor (for HiDPI screens), e.g. 1.5 or 2. Default:
    /// `FLTK_SCALING_FACTOR` or the desktop's scale if set, else 2 on a screen at least 3000
    /// pixels wide or 180 dpi, else 1.
    #[arg(long, value_parser = parse_scale)]
    pub scale: Option<f32>,
}

/// A scale factor FLTK can honour: 0.5 to 4.
fn parse_scale(s: &str) -> Result<f32, String> {
    let f: f32 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number (try 1.5 or 2)"))?;
    if (0.5..=4.0).contains(&f) {
        Ok(f)
    } else {
        Err(format!("scale {f} is out of range: use 0.5 to 4"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[test]
    fn defaults_and_scale_bounds() {
        let o = Options::try_parse_from(["peerchat"]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(o.server, "127.0.0.1:7878");
        assert!(o.scale.is_none());
        let o = Options::try_parse_from(["peerchat", "--scale", "2", "--server", "h:1"])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(o.scale, Some(2.0));
        assert_eq!(o.server, "h:1");
        assert!(Options::try_parse_from(["peerchat", "--scale", "9"]).is_err());
        assert!(Options::try_parse_from(["peerchat", "--scale", "x"]).is_err());
    }
}
