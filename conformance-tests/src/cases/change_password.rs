//! SPEC.md §5.7: ChangePassword — the old password is checked like Login's and under the same
//! failure limits (§5.1.7); the new one follows §5.1.3; the session, the identity key and the
//! recovery code stay.

use peerchat_proto::wire::{self, ErrorCode};

use crate::case::{Case, CaseResult, Verdict};
use crate::client::{req, Client};
use crate::ctx::{expect_code, Ctx, User};
use crate::ident;
use crate::{check, ok};

/// The ChangePassword cases.
pub fn cases() -> Vec<Case> {
    vec![
        Case::must("auth.change-password.ok", "5.7", "ChangePassword answers ChangePasswordOk and the session stays LoggedIn; afterwards Login refuses the old password and accepts the new one.", |c| Box::pin(change_ok(c))),
        Case::must("auth.change-password.key-and-code-kept", "5.7", "After ChangePassword, KeyLogin with the registered key works and the recovery code handed out at Register still resets the password.", |c| Box::pin(key_and_code_kept(c))),
        Case::must("auth.change-password.wrong-old", "5.7", "A wrong old password is BAD_CREDENTIALS and changes nothing: the old password still logs in.", |c| Box::pin(wrong_old(c))).covers(&["ERROR_CODE_BAD_CREDENTIALS"]),
        Case::must("auth.change-password.weak-new", "5.7", "A new password that is too short or equal to the userid (other letter case) is WEAK_PASSWORD, even with a wrong old password, and is not a failure for the limits.", |c| Box::pin(weak_new(c))).covers(&["ERROR_CODE_WEAK_PASSWORD"]),
        Case::must("auth.change-password.not-logged-in", "4.6", "ChangePassword on an Authenticating connection is NOT_LOGGED_IN.", |c| Box::pin(not_logged_in(c))).covers(&["ERROR_CODE_NOT_LOGGED_IN"]),
        Case::must("auth.change-password.lockout", "5.1.7", "After 5 wrong old passwords, ChangePassword with the right one is RATE_LIMITED (0 < retry_after_ms <= 1000), and so is a Login of the account: one counter per account.", |c| Box::pin(lockout(c))).covers(&["ERROR_CODE_RATE_LIMITED"]),
    ]
}

/// Logs in with `password` on a fresh connection with the user's key; the raw result.
async fn login_result(
    ctx: &Ctx,
    u: &User,
    password: &str,
) -> Result<wire::response::Result, Verdict> {
    let mut c = ctx.connect(u.key).await?;
    Ok(c.request(req::login(&u.userid, password, None)).await?)
}

/// A Find of oneself, answered FindOk: the connection is still LoggedIn as `u`.
async fn still_logged_in(c: &mut Client, u: &User, after: &str) -> Result<(), Verdict> {
    let r = c.request(req::find(&u.userid)).await?;
    let f = ok!(r, Find, format!("Find {after}"));
    check!(f.found, "Find of oneself {after}: not found");
    Ok(())
}

async fn change_ok(ctx: Ctx) -> CaseResult {
    let (mut u, mut c) = ctx.online_user().await?;
    let new_password = ident::password();
    let r = c
        .request(req::change_password(&u.password, &new_password))
        .await?;
    ok!(r, ChangePassword, "ChangePassword");
    still_logged_in(&mut c, &u, "after ChangePasswordOk").await?;
    let r = login_result(&ctx, &u, &u.password).await?;
    expect_code(&r, ErrorCode::BadCredentials, "Login with the old password")?;
    u.password = new_password;
    ctx.login(&u).await?;
    Ok("ChangePasswordOk; old password refused, new one logs in".into())
}

async fn key_and_code_kept(ctx: Ctx) -> CaseResult {
    let (u, mut c) = ctx.online_user().await?;
    let r = c
        .request(req::change_password(&u.password, &ident::password()))
        .await?;
    ok!(r, ChangePassword, "ChangePassword");
    ok!(c.request(req::logout()).await?, Logout, "Logout");
    ok!(
        c.request(req::key_login(&u.userid, None)).await?,
        Login,
        "KeyLogin after ChangePassword"
    );
    let mut f = ctx.connect(u.key).await?;
    let r = f
        .request(req::forgot(
            &u.userid,
            &u.email,
            &u.recovery_code,
            &ident::password(),
        ))
        .await?;
    ok!(
        r,
        ForgotPassword,
        "ForgotPassword with the code from Register after ChangePassword"
    );
    Ok("identity key and recovery code unchanged".into())
}

async fn wrong_old(ctx: Ctx) -> CaseResult {
    let (u, mut c) = ctx.online_user().await?;
    let r = c
        .request(req::change_password("wrong-password-0", &ident::password()))
        .await?;
    expect_code(
        &r,
        ErrorCode::BadCredentials,
        "ChangePassword with a wrong old password",
    )?;
    still_logged_in(&mut c, &u, "after the refused ChangePassword").await?;
    ctx.login(&u).await?;
    Ok("BAD_CREDENTIALS; the password is unchanged".into())
}

async fn weak_new(ctx: Ctx) -> CaseResult {
    let (u, mut c) = ctx.online_user().await?;
    let weak = [
        ("short-pw1".to_owned(), "a 9-character new password"),
        (u.userid.to_ascii_uppercase(), "the userid in upper case"),
    ];
    // Six weak attempts with a wrong old password: were they failures, the account would be
    // locked and the Login below RATE_LIMITED.
    for round in 0..3 {
        for (pw, what) in &weak {
            let r = c
                .request(req::change_password("wrong-password-0", pw))
                .await?;
            expect_code(
                &r,
                ErrorCode::WeakPassword,
                &format!("ChangePassword to {what} (round {})", round + 1),
            )?;
        }
    }
    ctx.login(&u).await?;
    Ok("WEAK_PASSWORD before the old password is checked; not counted".into())
}

async fn not_logged_in(ctx: Ctx) -> CaseResult {
    let u = ctx.new_user().await?;
    let mut c = ctx.connect(u.key).await?;
    let r = c
        .request(req::change_password(&u.password, &ident::password()))
        .await?;
    expect_code(&r, ErrorCode::NotLoggedIn, "ChangePassword before Login")?;
    ctx.login(&u).await?;
    Ok("NOT_LOGGED_IN; the password is unchanged".into())
}

async fn lockout(ctx: Ctx) -> CaseResult {
    let (u, mut c) = ctx.online_user().await?;
    for i in 0..5 {
        let r = c
            .request(req::change_password("wrong-password-0", &ident::password()))
            .await?;
        expect_code(
            &r,
            ErrorCode::BadCredentials,
            &format!("ChangePassword with a wrong old password {}", i + 1),
        )?;
    }
    let r = c
        .request(req::change_password(&u.password, &ident::password()))
        .await?;
    let e = expect_code(
        &r,
        ErrorCode::RateLimited,
        "ChangePassword with the right old password after 5 failures",
    )?;
    check!(
        e.retry_after_ms >= 1 && e.retry_after_ms <= 1000,
        "retry_after_ms {} not in 1..=1000",
        e.retry_after_ms
    );
    let r = login_result(&ctx, &u, &u.password).await?;
    expect_code(
        &r,
        ErrorCode::RateLimited,
        "Login with the right password after 5 failed ChangePasswords",
    )?;
    Ok(format!("RATE_LIMITED, retry_after_ms {}", e.retry_after_ms))
}
