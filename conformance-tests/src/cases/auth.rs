//! SPEC.md §5: Register, Login, KeyLogin, ForgotPassword, Logout, validation rules and the
//! authentication failure limits; §6.10 session replacement.

use std::time::Duration;

use peerchat_proto::limits::LOGIN_FAIL_ACCOUNT_MAX;
use peerchat_proto::wire::{self, ErrorCode};

use crate::case::{Case, CaseResult, Verdict};
use crate::client::{describe, req, Client};
use crate::ctx::{expect_code, is_recovery_code, Ctx, User};
use crate::ident;
use crate::{check, fail, ok, skip};

/// The account cases.
pub fn cases() -> Vec<Case> {
    vec![
        // §5.2 Register
        Case::must("auth.register.ok", "5.2", "Register succeeds with a recovery code of the form XXXXX-XXXXX-XXXXX-XXXXX (base32).", |c| Box::pin(register_ok(c))),
        Case::must("auth.register.rate-floor", "5.2", "60 Registers from one source address within a minute are all served (SPEC.md §10: a registration limit allows at least 60 per minute).", |c| Box::pin(register_rate(c, false))).timeout_secs(120),
        Case::should("auth.register.rate-limit", "5.2", "Registers from one source address beyond REGISTER_BURST are answered RATE_LIMITED with retry_after_ms >= 1, after at least 60 were served.", |c| Box::pin(register_rate(c, true))).covers(&["ERROR_CODE_RATE_LIMITED"]).timeout_secs(120),
        Case::must("auth.register.does-not-log-in", "5.2", "After RegisterOk the connection is still Authenticating.", |c| Box::pin(register_not_logged_in(c))),
        Case::must("auth.register.userid-taken", "5.2", "Registering an existing userid is answered USERID_TAKEN.", |c| Box::pin(userid_taken(c, false))).covers(&["ERROR_CODE_USERID_TAKEN"]),
        Case::must("auth.register.userid-taken-case-insensitive", "5.1.1", "Registering an existing userid in another letter case is answered USERID_TAKEN.", |c| Box::pin(userid_taken(c, true))).covers(&["ERROR_CODE_USERID_TAKEN"]),
        Case::must("auth.register.email-taken", "5.2", "Registering an existing e-mail address (other letter case) is answered EMAIL_TAKEN.", |c| Box::pin(email_taken(c))).covers(&["ERROR_CODE_EMAIL_TAKEN"]),
        Case::must("auth.register.concurrent-same-userid", "5.2", "Of two concurrent registrations of one userid exactly one succeeds; the other gets USERID_TAKEN.", |c| Box::pin(concurrent_register(c))).covers(&["ERROR_CODE_USERID_TAKEN"]),
        Case::must("auth.register.same-key-two-accounts", "5.2", "The same identity key may be registered for two accounts.", |c| Box::pin(same_key_two_accounts(c))),
        Case::must("auth.register.userid-max-length", "5.1.1", "A 32-character userid using every allowed punctuation character is accepted.", |c| Box::pin(userid_max(c))),
        Case::must("auth.register.invalid-userid.too-short", "5.1.1", "A 2-character userid is INVALID_USERID.", |c| Box::pin(reg_invalid_userid(c, 0))).covers(&["ERROR_CODE_INVALID_USERID"]),
        Case::must("auth.register.invalid-userid.too-long", "5.1.1", "A 33-character userid is INVALID_USERID.", |c| Box::pin(reg_invalid_userid(c, 1))).covers(&["ERROR_CODE_INVALID_USERID"]),
        Case::must("auth.register.invalid-userid.bad-char", "5.1.1", "A userid with a space or '!' is INVALID_USERID.", |c| Box::pin(reg_invalid_userid(c, 2))).covers(&["ERROR_CODE_INVALID_USERID"]),
        Case::must("auth.register.invalid-userid.leading-punct", "5.1.1", "A userid starting with '_' is INVALID_USERID.", |c| Box::pin(reg_invalid_userid(c, 3))).covers(&["ERROR_CODE_INVALID_USERID"]),
        Case::must("auth.register.invalid-userid.non-ascii", "5.1.1", "A userid with a non-ASCII letter is INVALID_USERID.", |c| Box::pin(reg_invalid_userid(c, 4))).covers(&["ERROR_CODE_INVALID_USERID"]),
        Case::must("auth.register.invalid-email.no-at", "5.1.2", "An e-mail address without '@' is INVALID_EMAIL.", |c| Box::pin(reg_invalid_email(c, 0))).covers(&["ERROR_CODE_INVALID_EMAIL"]),
        Case::must("auth.register.invalid-email.two-ats", "5.1.2", "An e-mail address with two '@' is INVALID_EMAIL.", |c| Box::pin(reg_invalid_email(c, 1))).covers(&["ERROR_CODE_INVALID_EMAIL"]),
        Case::must("auth.register.invalid-email.no-dot", "5.1.2", "An e-mail domain without '.' is INVALID_EMAIL.", |c| Box::pin(reg_invalid_email(c, 2))).covers(&["ERROR_CODE_INVALID_EMAIL"]),
        Case::must("auth.register.invalid-email.empty-label", "5.1.2", "An e-mail domain with an empty label ('a..b') is INVALID_EMAIL.", |c| Box::pin(reg_invalid_email(c, 3))).covers(&["ERROR_CODE_INVALID_EMAIL"]),
        Case::must("auth.register.invalid-email.empty-local", "5.1.2", "An e-mail address with an empty local part is INVALID_EMAIL.", |c| Box::pin(reg_invalid_email(c, 4))).covers(&["ERROR_CODE_INVALID_EMAIL"]),
        Case::must("auth.register.invalid-email.local-too-long", "5.1.2", "An e-mail local part of 65 bytes is INVALID_EMAIL.", |c| Box::pin(reg_invalid_email(c, 5))).covers(&["ERROR_CODE_INVALID_EMAIL"]),
        Case::must("auth.register.invalid-email.too-long", "5.1.2", "An e-mail address of 255 bytes is INVALID_EMAIL.", |c| Box::pin(reg_invalid_email(c, 6))).covers(&["ERROR_CODE_INVALID_EMAIL"]),
        Case::must("auth.register.invalid-email.whitespace", "5.1.2", "An e-mail address containing U+00A0 (Unicode White_Space) is INVALID_EMAIL.", |c| Box::pin(reg_invalid_email(c, 7))).covers(&["ERROR_CODE_INVALID_EMAIL"]),
        Case::must("auth.register.weak-password.too-short", "5.1.3", "A 9-character password is WEAK_PASSWORD.", |c| Box::pin(reg_weak(c, 0))).covers(&["ERROR_CODE_WEAK_PASSWORD"]),
        Case::must("auth.register.weak-password.nine-multibyte", "5.1.3", "9 two-byte characters (18 bytes) are WEAK_PASSWORD: length counts characters.", |c| Box::pin(reg_weak(c, 1))).covers(&["ERROR_CODE_WEAK_PASSWORD"]),
        Case::must("auth.register.weak-password.equals-userid", "5.1.3", "A password equal to the userid (other letter case) is WEAK_PASSWORD.", |c| Box::pin(reg_weak(c, 2))).covers(&["ERROR_CODE_WEAK_PASSWORD"]),
        Case::must("auth.register.weak-password.too-long", "5.1.3", "A password of 1025 bytes is WEAK_PASSWORD.", |c| Box::pin(reg_weak(c, 3))).covers(&["ERROR_CODE_WEAK_PASSWORD"]),
        Case::must("auth.register.password-ten-multibyte", "5.1.3", "10 two-byte characters are a valid password.", |c| Box::pin(password_multibyte_ok(c))),
        Case::must("auth.register.huge-userid", "9.1", "A 100 000-byte userid is INVALID_USERID and the Error.message stays within MAX_HUMAN_TEXT (1024 bytes).", |c| Box::pin(huge_userid(c))).covers(&["ERROR_CODE_INVALID_USERID"]),
        Case::must("auth.register.check-order", "5.2", "With several violations the first in the order INVALID_USERID, INVALID_EMAIL, WEAK_PASSWORD, USERID_TAKEN, EMAIL_TAKEN is answered.", |c| Box::pin(register_order(c))),
        // §5.3 Login
        Case::must("auth.login.ok", "5.3.1", "Login answers LoginOk with the registered spelling, empty lists, no endpoint and the server time.", |c| Box::pin(login_ok(c))),
        Case::must("auth.login.case-insensitive", "5.1.1", "Login with the userid in another letter case works and LoginOk carries the registered spelling.", |c| Box::pin(login_case(c))),
        Case::must("auth.login.wrong-password", "5.3", "Login with a wrong password is BAD_CREDENTIALS.", |c| Box::pin(login_bad(c, 0))).covers(&["ERROR_CODE_BAD_CREDENTIALS"]),
        Case::must("auth.login.unknown-user", "5.3", "Login as an unknown user is BAD_CREDENTIALS.", |c| Box::pin(login_bad(c, 1))).covers(&["ERROR_CODE_BAD_CREDENTIALS"]),
        Case::must("auth.login.invalid-userid", "5.1.1", "Login with a syntactically invalid userid is BAD_CREDENTIALS (not INVALID_USERID).", |c| Box::pin(login_bad(c, 2))).covers(&["ERROR_CODE_BAD_CREDENTIALS"]),
        Case::must("auth.login.password-too-long", "5.3", "Login with a password over 1024 bytes is BAD_CREDENTIALS.", |c| Box::pin(login_bad(c, 3))).covers(&["ERROR_CODE_BAD_CREDENTIALS"]),
        Case::must("auth.login.endpoint-empty-host", "5.1.6", "An endpoint with an empty host becomes the connection's source address in LoginOk.", |c| Box::pin(endpoint_echo(c, 0))),
        Case::must("auth.login.endpoint-explicit", "5.1.6", "An explicit IPv4 endpoint is echoed in LoginOk.", |c| Box::pin(endpoint_echo(c, 1))),
        Case::must("auth.login.endpoint-ipv6-canonical", "5.1.6", "An IPv6 endpoint is echoed in RFC 5952 canonical form.", |c| Box::pin(endpoint_echo(c, 2))),
        Case::must("auth.login.endpoint-ipv4-mapped", "5.1.6", "An IPv4-mapped IPv6 endpoint is echoed in IPv4 form.", |c| Box::pin(endpoint_echo(c, 3))),
        Case::must("auth.login.endpoint-port-zero", "5.1.6", "Login with endpoint port 0 is INVALID_REQUEST and does not log in.", |c| Box::pin(endpoint_invalid(c, 0))).covers(&["ERROR_CODE_INVALID_REQUEST"]),
        Case::must("auth.login.endpoint-port-too-big", "5.1.6", "Login with endpoint port 70000 is INVALID_REQUEST.", |c| Box::pin(endpoint_invalid(c, 1))).covers(&["ERROR_CODE_INVALID_REQUEST"]),
        Case::must("auth.login.endpoint-hostname", "5.1.6", "Login with a host name as endpoint host is INVALID_REQUEST.", |c| Box::pin(endpoint_invalid(c, 2))).covers(&["ERROR_CODE_INVALID_REQUEST"]),
        Case::must("auth.login.endpoint-leading-zero", "5.1.6", "Login with IPv4 host '192.0.2.07' (leading zero) is INVALID_REQUEST.", |c| Box::pin(endpoint_invalid(c, 3))).covers(&["ERROR_CODE_INVALID_REQUEST"]),
        Case::must("auth.login.endpoint-brackets", "5.1.6", "Login with IPv6 host in brackets '[::1]' is INVALID_REQUEST.", |c| Box::pin(endpoint_invalid(c, 4))).covers(&["ERROR_CODE_INVALID_REQUEST"]),
        Case::must("auth.login.endpoint-ipv6-zone", "5.1.6", "Login with IPv6 host carrying a zone id 'fe80::1%eth0' is INVALID_REQUEST.", |c| Box::pin(endpoint_invalid(c, 5))).covers(&["ERROR_CODE_INVALID_REQUEST"]),
        Case::must("auth.login.endpoint-before-credentials", "5.3", "An invalid endpoint is reported before a wrong password (INVALID_REQUEST, not BAD_CREDENTIALS).", |c| Box::pin(endpoint_before_credentials(c))).covers(&["ERROR_CODE_INVALID_REQUEST"]),
        Case::must("auth.login.new-key-replaces", "5.3", "Login from a new identity key replaces the account key: KeyLogin then works only with the new key.", |c| Box::pin(new_key_replaces(c))),
        // §5.4 KeyLogin
        Case::must("auth.keylogin.ok", "5.4", "KeyLogin with the registered key answers LoginOk.", |c| Box::pin(keylogin_ok(c))),
        Case::must("auth.keylogin.wrong-key", "5.4", "KeyLogin from another identity key is BAD_CREDENTIALS.", |c| Box::pin(keylogin_bad(c, 0))).covers(&["ERROR_CODE_BAD_CREDENTIALS"]),
        Case::must("auth.keylogin.unknown-user", "5.4", "KeyLogin as an unknown user is BAD_CREDENTIALS.", |c| Box::pin(keylogin_bad(c, 1))).covers(&["ERROR_CODE_BAD_CREDENTIALS"]),
        Case::must("auth.keylogin.case-insensitive", "5.4", "KeyLogin with the userid in another letter case works.", |c| Box::pin(keylogin_case(c))),
        Case::must("auth.keylogin.endpoint-invalid", "5.4", "KeyLogin with endpoint port 0 is INVALID_REQUEST.", |c| Box::pin(keylogin_endpoint_invalid(c))).covers(&["ERROR_CODE_INVALID_REQUEST"]),
        // §5.5 ForgotPassword
        Case::must("auth.forgot.ok", "5.5", "ForgotPassword answers a new recovery code; the new password works, the old one does not.", |c| Box::pin(forgot_ok(c))),
        Case::must("auth.forgot.old-code-invalid", "5.5", "After a reset the old recovery code is RESET_REFUSED.", |c| Box::pin(forgot_old_code(c))).covers(&["ERROR_CODE_RESET_REFUSED"]),
        Case::must("auth.forgot.code-normalised", "5.1.4", "The recovery code is accepted in lower case, without dashes and with spaces.", |c| Box::pin(forgot_normalised(c))),
        Case::must("auth.forgot.wrong-code", "5.5", "A wrong recovery code is RESET_REFUSED.", |c| Box::pin(forgot_refused(c, 0))).covers(&["ERROR_CODE_RESET_REFUSED"]),
        Case::must("auth.forgot.wrong-email", "5.5", "A wrong e-mail address is RESET_REFUSED.", |c| Box::pin(forgot_refused(c, 1))).covers(&["ERROR_CODE_RESET_REFUSED"]),
        Case::must("auth.forgot.unknown-user", "5.5", "An unknown userid is RESET_REFUSED.", |c| Box::pin(forgot_refused(c, 2))).covers(&["ERROR_CODE_RESET_REFUSED"]),
        Case::must("auth.forgot.email-case-insensitive", "5.5", "The e-mail address matches case-insensitively.", |c| Box::pin(forgot_email_case(c))),
        Case::must("auth.forgot.weak-password-first", "5.5", "A weak new password is WEAK_PASSWORD even with a wrong code, and is not a failure for the limits.", |c| Box::pin(forgot_weak_first(c))).covers(&["ERROR_CODE_WEAK_PASSWORD"]),
        Case::must("auth.forgot.key-unchanged", "5.5", "After a reset KeyLogin with the registered key still works.", |c| Box::pin(forgot_key_unchanged(c))),
        Case::must("auth.forgot.does-not-log-in", "5.5", "After ForgotPasswordOk the connection is still Authenticating.", |c| Box::pin(forgot_not_logged_in(c))),
        Case::must("auth.forgot.session-unaffected", "5.5", "A reset does not end the account's session on another connection.", |c| Box::pin(forgot_session_unaffected(c))),
        // §5.1.7 limits
        Case::must("auth.limits.login-lockout", "5.1.7", "After 5 failed Logins even the right password is RATE_LIMITED with 0 < retry_after_ms <= 1000; it works after the wait.", |c| Box::pin(login_lockout(c))).covers(&["ERROR_CODE_RATE_LIMITED"]),
        Case::must("auth.limits.keylogin-no-account-lock", "5.1.7", "15 concurrent KeyLogins with a wrong key do not lock the account: the owner's Login and KeyLogin succeed at once.", |c| Box::pin(keylogin_no_account_lock(c))),
        Case::must("auth.limits.keylogin-ignores-lock", "5.1.7", "After 5 failed Logins the password is locked, but KeyLogin with the registered key still succeeds.", |c| Box::pin(keylogin_ignores_lock(c))).covers(&["ERROR_CODE_RATE_LIMITED"]),
        Case::must("auth.limits.reserved-before-work", "5.1.7", "30 concurrent wrong Logins for one account (30 connections): at most 5 are answered BAD_CREDENTIALS, the rest RATE_LIMITED.", |c| Box::pin(reserved_before_work(c))).covers(&["ERROR_CODE_RATE_LIMITED"]),
        Case::must("auth.limits.forgot-lockout", "5.1.7", "After 5 refused ForgotPasswords ForgotPassword is RATE_LIMITED.", |c| Box::pin(forgot_lockout(c))).covers(&["ERROR_CODE_RATE_LIMITED"]),
        Case::must("auth.limits.shared-counters", "5.1.7", "Login and ForgotPassword failures share one counter per account.", |c| Box::pin(shared_counters(c))).covers(&["ERROR_CODE_RATE_LIMITED"]),
        Case::must("auth.limits.unknown-account", "5.1.7", "A syntactically valid but unknown userid is locked after 5 failures too (existence is not revealed).", |c| Box::pin(unknown_account_locked(c))).covers(&["ERROR_CODE_RATE_LIMITED"]),
        Case::must("auth.limits.case-insensitive", "5.1.7", "Failures count against the ASCII-lowercased userid, whatever the spelling.", |c| Box::pin(lockout_case(c))).covers(&["ERROR_CODE_RATE_LIMITED"]),
        Case::must("auth.limits.success-clears", "5.1.7", "A successful Login clears the account's failures.", |c| Box::pin(success_clears(c))),
        Case::should("auth.limits.backoff-doubles", "5.1.7", "The lock after the 6th failure is about 2 s (doubling).", |c| Box::pin(backoff_doubles(c))).covers(&["ERROR_CODE_RATE_LIMITED"]),
        Case::must("auth.limits.per-address", "5.1.7", "After 50 failures from one source address, a login from it is RATE_LIMITED.", |c| Box::pin(per_address(c))).covers(&["ERROR_CODE_RATE_LIMITED"]).timeout_secs(120),
        // §5.6 Logout
        Case::must("auth.logout.ok", "5.6", "Logout answers LogoutOk.", |c| Box::pin(logout_ok(c))),
        // §6.10 session replacement
        Case::must("auth.session.replaced", "6.10", "A second Login of the account closes the first connection with Close SESSION_REPLACED.", |c| Box::pin(session_replaced(c, false))).covers(&["CLOSE_REASON_SESSION_REPLACED"]),
        Case::must("auth.session.replaced-by-keylogin", "6.10", "A KeyLogin of the account on another connection replaces the session too.", |c| Box::pin(session_replaced(c, true))).covers(&["CLOSE_REASON_SESSION_REPLACED"]),
    ]
}

// ---------------------------------------------------------------- Register

async fn register_ok(ctx: Ctx) -> CaseResult {
    let mut u = User::random();
    ctx.register(&mut u).await?;
    check!(
        is_recovery_code(&u.recovery_code),
        "recovery code {:?} is not XXXXX-XXXXX-XXXXX-XXXXX base32",
        u.recovery_code
    );
    Ok(format!("registered {}", u.userid))
}

async fn register_not_logged_in(ctx: Ctx) -> CaseResult {
    let u = User::random();
    let mut c = ctx.connect(u.key).await?;
    let r = c
        .request(req::register(&u.userid, &u.email, &u.password))
        .await?;
    ok!(r, Register, "Register");
    let r = c.request(req::find(&u.userid)).await?;
    expect_code(&r, ErrorCode::NotLoggedIn, "Find after Register")?;
    let r = c.request(req::key_login(&u.userid, None)).await?;
    ok!(r, Login, "KeyLogin after Register on the same connection");
    Ok("Register does not log in; KeyLogin follows".into())
}

async fn register_with(
    ctx: &Ctx,
    userid: &str,
    email: &str,
    password: &str,
) -> Result<wire::response::Result, Verdict> {
    let mut c = ctx.connect(ident::random_key()).await?;
    Ok(c.request_patiently(req::register(userid, email, password))
        .await?)
}

async fn userid_taken(ctx: Ctx, other_case: bool) -> CaseResult {
    let u = ctx.new_user().await?;
    let userid = if other_case {
        flip_case(&u.userid)
    } else {
        u.userid.clone()
    };
    let r = register_with(
        &ctx,
        &userid,
        &ident::email(&ident::userid()),
        &ident::password(),
    )
    .await?;
    expect_code(
        &r,
        ErrorCode::UseridTaken,
        &format!("Register {userid} after {}", u.userid),
    )?;
    Ok(format!("{userid}: USERID_TAKEN"))
}

fn flip_case(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_uppercase() {
                c.to_ascii_lowercase()
            } else {
                c.to_ascii_uppercase()
            }
        })
        .collect()
}

async fn email_taken(ctx: Ctx) -> CaseResult {
    let u = ctx.new_user().await?;
    let email = u.email.to_ascii_uppercase();
    let r = register_with(&ctx, &ident::userid(), &email, &ident::password()).await?;
    expect_code(&r, ErrorCode::EmailTaken, &format!("Register with {email}"))?;
    Ok("EMAIL_TAKEN (case-insensitive)".into())
}

async fn concurrent_register(ctx: Ctx) -> CaseResult {
    let userid = ident::userid();
    let (lower, e1, e2, p1, p2) = (
        userid.to_ascii_lowercase(),
        ident::email(&ident::userid()),
        ident::email(&ident::userid()),
        ident::password(),
        ident::password(),
    );
    let (a, b) = tokio::join!(
        register_with(&ctx, &userid, &e1, &p1),
        register_with(&ctx, &lower, &e2, &p2)
    );
    let (a, b) = (a?, b?);
    let is_ok = |r: &wire::response::Result| matches!(r, wire::response::Result::Register(_));
    let is_taken = |r: &wire::response::Result| matches!(r, wire::response::Result::Error(e) if e.code == ErrorCode::UseridTaken as i32);
    check!(
        (is_ok(&a) && is_taken(&b)) || (is_ok(&b) && is_taken(&a)),
        "expected one RegisterOk and one USERID_TAKEN, got {} and {}",
        describe(&a),
        describe(&b)
    );
    Ok("one RegisterOk, one USERID_TAKEN".into())
}

async fn same_key_two_accounts(ctx: Ctx) -> CaseResult {
    let mut a = User::random();
    let mut b = User::random();
    b.key = a.key;
    ctx.register(&mut a).await?;
    ctx.register(&mut b).await?;
    let mut c = ctx.connect(a.key).await?;
    ok!(
        c.request(req::key_login(&b.userid, None)).await?,
        Login,
        "KeyLogin of the second account"
    );
    Ok("two accounts share one key".into())
}

async fn userid_max(ctx: Ctx) -> CaseResult {
    let mut u = User::random();
    u.userid = format!("c{}_.-{}", ident::alnum(14), ident::alnum(14));
    check!(
        u.userid.len() == 32,
        "test bug: userid length {}",
        u.userid.len()
    );
    u.email = ident::email(&u.userid);
    ctx.register(&mut u).await?;
    Ok(format!("{} accepted", u.userid))
}

async fn reg_invalid_userid(ctx: Ctx, i: usize) -> CaseResult {
    let userid = match i {
        0 => ident::alnum(2),
        1 => format!("c{}", ident::alnum(32)),
        2 => format!("c{} x!", ident::alnum(5)),
        3 => format!("_{}", ident::alnum(8)),
        _ => format!("c{}é", ident::alnum(5)),
    };
    let r = register_with(
        &ctx,
        &userid,
        &ident::email(&ident::userid()),
        &ident::password(),
    )
    .await?;
    expect_code(
        &r,
        ErrorCode::InvalidUserid,
        &format!("Register {userid:?}"),
    )?;
    Ok(format!("{userid:?}: INVALID_USERID"))
}

async fn reg_invalid_email(ctx: Ctx, i: usize) -> CaseResult {
    let tag = ident::alnum(10).to_ascii_lowercase();
    let email = match i {
        0 => format!("{tag}.example.test"),
        1 => format!("{tag}@x@example.test"),
        2 => format!("{tag}@localhost"),
        3 => format!("{tag}@example..test"),
        4 => "@example.test".to_string(),
        5 => format!("{}{}@example.test", tag, "l".repeat(55)),
        6 => format!("{tag}@{}.test", "d".repeat(255 - tag.len() - 6)),
        _ => format!("{tag}\u{a0}x@example.test"),
    };
    let r = register_with(&ctx, &ident::userid(), &email, &ident::password()).await?;
    expect_code(
        &r,
        ErrorCode::InvalidEmail,
        &format!("Register with e-mail {email:?} ({} bytes)", email.len()),
    )?;
    Ok(format!("{} bytes: INVALID_EMAIL", email.len()))
}

async fn reg_weak(ctx: Ctx, i: usize) -> CaseResult {
    let userid = ident::userid();
    let password = match i {
        0 => "123456789".to_string(),
        1 => "é".repeat(9),
        2 => flip_case(&userid),
        _ => "p".repeat(1025),
    };
    let password = if i == 2 && password.chars().count() < 10 {
        format!("{password}xx")
    } else {
        password
    };
    let r = register_with(&ctx, &userid, &ident::email(&userid), &password).await?;
    expect_code(&r, ErrorCode::WeakPassword, "Register")?;
    Ok("WEAK_PASSWORD".into())
}

async fn huge_userid(ctx: Ctx) -> CaseResult {
    let userid = format!("c{}", "x".repeat(100_000));
    let r = register_with(
        &ctx,
        &userid,
        &ident::email(&ident::userid()),
        &ident::password(),
    )
    .await?;
    let e = expect_code(
        &r,
        ErrorCode::InvalidUserid,
        "Register with a 100 000-byte userid",
    )?;
    check!(
        e.message.len() <= peerchat_proto::limits::MAX_HUMAN_TEXT,
        "Error.message is {} bytes (MAX_HUMAN_TEXT is {})",
        e.message.len(),
        peerchat_proto::limits::MAX_HUMAN_TEXT
    );
    Ok(format!("INVALID_USERID, message {} bytes", e.message.len()))
}

async fn password_multibyte_ok(ctx: Ctx) -> CaseResult {
    let mut u = User::random();
    u.password = "é".repeat(10);
    ctx.register(&mut u).await?;
    ctx.login(&u).await?;
    Ok("10 characters / 20 bytes accepted".into())
}

async fn register_order(ctx: Ctx) -> CaseResult {
    let taken = ctx.new_user().await?;
    let cases: [(&str, String, String, String, ErrorCode); 4] = [
        (
            "invalid userid + invalid e-mail + weak password",
            "_x".into(),
            "bad".into(),
            "short".into(),
            ErrorCode::InvalidUserid,
        ),
        (
            "invalid e-mail + weak password + taken userid",
            taken.userid.clone(),
            "bad".into(),
            "short".into(),
            ErrorCode::InvalidEmail,
        ),
        (
            "weak password + taken userid + taken e-mail",
            taken.userid.clone(),
            taken.email.clone(),
            "short".into(),
            ErrorCode::WeakPassword,
        ),
        (
            "taken userid + taken e-mail",
            taken.userid.clone(),
            taken.email.clone(),
            ident::password(),
            ErrorCode::UseridTaken,
        ),
    ];
    let mut c = ctx.connect(ident::random_key()).await?;
    for (what, u, e, p, code) in cases {
        let r = c.request(req::register(&u, &e, &p)).await?;
        expect_code(&r, code, what)?;
    }
    Ok("errors in the documented order".into())
}

// ---------------------------------------------------------------- Login

async fn login_ok(ctx: Ctx) -> CaseResult {
    let u = ctx.new_user().await?;
    let (_, l) = ctx.login(&u).await?;
    check!(
        l.userid == u.userid,
        "LoginOk.userid {:?}, registered {:?}",
        l.userid,
        u.userid
    );
    check!(
        l.friends.is_empty() && l.incoming_requests.is_empty() && l.outgoing_requests.is_empty(),
        "a new account's LoginOk has non-empty lists"
    );
    check!(
        l.peer_endpoint.is_none(),
        "LoginOk.peer_endpoint {:?} though none was announced",
        l.peer_endpoint
    );
    check!(
        l.server_time_unix_ms > 1_600_000_000_000,
        "server_time_unix_ms {} is not a plausible Unix time in ms",
        l.server_time_unix_ms
    );
    Ok("LoginOk snapshot as specified".into())
}

async fn login_case(ctx: Ctx) -> CaseResult {
    let u = ctx.new_user().await?;
    let mut c = ctx.connect(u.key).await?;
    let r = c
        .request(req::login(&flip_case(&u.userid), &u.password, None))
        .await?;
    let l = ok!(r, Login, "Login with flipped case");
    check!(
        l.userid == u.userid,
        "LoginOk.userid {:?} instead of the registered {:?}",
        l.userid,
        u.userid
    );
    Ok("case-insensitive; registered spelling returned".into())
}

async fn login_bad(ctx: Ctx, i: usize) -> CaseResult {
    let u = ctx.new_user().await?;
    let (userid, password) = match i {
        0 => (u.userid.clone(), format!("{}x", u.password)),
        1 => (ident::userid(), u.password.clone()),
        2 => ("_bad userid!".to_string(), u.password.clone()),
        _ => (
            u.userid.clone(),
            format!("{}{}", u.password, "p".repeat(1100)),
        ),
    };
    let mut c = ctx.connect(u.key).await?;
    let r = c.request(req::login(&userid, &password, None)).await?;
    expect_code(&r, ErrorCode::BadCredentials, "Login")?;
    let r = c.request(req::find(&u.userid)).await?;
    expect_code(&r, ErrorCode::NotLoggedIn, "Find after the failed Login")?;
    Ok("BAD_CREDENTIALS; not logged in".into())
}

async fn endpoint_echo(ctx: Ctx, i: usize) -> CaseResult {
    let u = ctx.new_user().await?;
    let (sent, want) = match i {
        0 => ("", None),
        1 => ("192.0.2.7", Some("192.0.2.7")),
        2 => ("2001:DB8:0:0:0:0:0:7", Some("2001:db8::7")),
        _ => ("::ffff:192.0.2.7", Some("192.0.2.7")),
    };
    let (c, l) = ctx.login_with(&u, u.key, Some(req::ep(sent, 4567))).await?;
    let want_host = want
        .map(str::to_string)
        .unwrap_or_else(|| c.local_addr.ip().to_string());
    match l.peer_endpoint {
        Some(ep) if ep.host == want_host && ep.port == 4567 => {
            Ok(format!("{sent:?} -> {}:{}", ep.host, ep.port))
        }
        other => {
            fail!("sent host {sent:?}: LoginOk.peer_endpoint {other:?}, expected {want_host}:4567")
        }
    }
}

fn invalid_endpoint(i: usize) -> wire::PeerEndpoint {
    match i {
        0 => req::ep("", 0),
        1 => req::ep("", 70000),
        2 => req::ep("example.com", 4000),
        3 => req::ep("192.0.2.07", 4000),
        4 => req::ep("[::1]", 4000),
        _ => req::ep("fe80::1%eth0", 4000),
    }
}

async fn endpoint_invalid(ctx: Ctx, i: usize) -> CaseResult {
    let u = ctx.new_user().await?;
    let ep = invalid_endpoint(i);
    let mut c = ctx.connect(u.key).await?;
    let r = c
        .request(req::login(&u.userid, &u.password, Some(ep.clone())))
        .await?;
    expect_code(
        &r,
        ErrorCode::InvalidRequest,
        &format!("Login with endpoint {ep:?}"),
    )?;
    let r = c.request(req::find(&u.userid)).await?;
    expect_code(&r, ErrorCode::NotLoggedIn, "Find after the refused Login")?;
    Ok(format!("{}:{} refused", ep.host, ep.port))
}

async fn endpoint_before_credentials(ctx: Ctx) -> CaseResult {
    let u = ctx.new_user().await?;
    let mut c = ctx.connect(u.key).await?;
    let r = c
        .request(req::login(
            &u.userid,
            "wrong-password-123",
            Some(req::ep("", 0)),
        ))
        .await?;
    expect_code(
        &r,
        ErrorCode::InvalidRequest,
        "Login with a bad endpoint and a wrong password",
    )?;
    Ok("INVALID_REQUEST first".into())
}

async fn new_key_replaces(ctx: Ctx) -> CaseResult {
    let u = ctx.new_user().await?;
    let new_key = ident::other_key(u.key);
    let (c, _) = ctx.login_with(&u, new_key, None).await?;
    drop(c);
    let mut old = ctx.connect(u.key).await?;
    let r = old.request(req::key_login(&u.userid, None)).await?;
    expect_code(
        &r,
        ErrorCode::BadCredentials,
        "KeyLogin with the replaced key",
    )?;
    let mut new = ctx.connect(new_key).await?;
    ok!(
        new.request(req::key_login(&u.userid, None)).await?,
        Login,
        "KeyLogin with the new key"
    );
    Ok("key replaced".into())
}

// ---------------------------------------------------------------- KeyLogin

async fn keylogin_ok(ctx: Ctx) -> CaseResult {
    let u = ctx.new_user().await?;
    let mut c = ctx.connect(u.key).await?;
    let l = ok!(
        c.request(req::key_login(&u.userid, None)).await?,
        Login,
        "KeyLogin"
    );
    check!(l.userid == u.userid, "LoginOk.userid {:?}", l.userid);
    Ok("LoginOk".into())
}

async fn keylogin_bad(ctx: Ctx, i: usize) -> CaseResult {
    let u = ctx.new_user().await?;
    let (key, userid) = if i == 0 {
        (ident::other_key(u.key), u.userid.clone())
    } else {
        (u.key, ident::userid())
    };
    let mut c = ctx.connect(key).await?;
    let r = c.request(req::key_login(&userid, None)).await?;
    expect_code(&r, ErrorCode::BadCredentials, "KeyLogin")?;
    Ok("BAD_CREDENTIALS".into())
}

async fn keylogin_case(ctx: Ctx) -> CaseResult {
    let u = ctx.new_user().await?;
    let mut c = ctx.connect(u.key).await?;
    let l = ok!(
        c.request(req::key_login(&flip_case(&u.userid), None))
            .await?,
        Login,
        "KeyLogin with flipped case"
    );
    check!(
        l.userid == u.userid,
        "LoginOk.userid {:?} instead of {:?}",
        l.userid,
        u.userid
    );
    Ok("case-insensitive".into())
}

async fn keylogin_endpoint_invalid(ctx: Ctx) -> CaseResult {
    let u = ctx.new_user().await?;
    let mut c = ctx.connect(u.key).await?;
    let r = c
        .request(req::key_login(&u.userid, Some(req::ep("", 0))))
        .await?;
    expect_code(&r, ErrorCode::InvalidRequest, "KeyLogin with port 0")?;
    Ok("INVALID_REQUEST".into())
}

// ---------------------------------------------------------------- ForgotPassword

async fn forgot(
    ctx: &Ctx,
    key: usize,
    userid: &str,
    email: &str,
    code: &str,
    new_password: &str,
) -> Result<wire::response::Result, Verdict> {
    let mut c = ctx.connect(key).await?;
    Ok(c.request(req::forgot(userid, email, code, new_password))
        .await?)
}

async fn forgot_ok(ctx: Ctx) -> CaseResult {
    let mut u = ctx.new_user().await?;
    let new_password = ident::password();
    let r = forgot(
        &ctx,
        u.key,
        &u.userid,
        &u.email,
        &u.recovery_code,
        &new_password,
    )
    .await?;
    let f = ok!(r, ForgotPassword, "ForgotPassword");
    check!(
        is_recovery_code(&f.recovery_code),
        "new code {:?} malformed",
        f.recovery_code
    );
    check!(
        f.recovery_code != u.recovery_code,
        "the new recovery code equals the old one"
    );
    let mut c = ctx.connect(u.key).await?;
    let r = c.request(req::login(&u.userid, &u.password, None)).await?;
    expect_code(&r, ErrorCode::BadCredentials, "Login with the old password")?;
    u.password = new_password;
    ctx.login(&u).await?;
    Ok("password reset; new code issued".into())
}

async fn forgot_old_code(ctx: Ctx) -> CaseResult {
    let u = ctx.new_user().await?;
    let r = forgot(
        &ctx,
        u.key,
        &u.userid,
        &u.email,
        &u.recovery_code,
        &ident::password(),
    )
    .await?;
    ok!(r, ForgotPassword, "first ForgotPassword");
    let r = forgot(
        &ctx,
        u.key,
        &u.userid,
        &u.email,
        &u.recovery_code,
        &ident::password(),
    )
    .await?;
    expect_code(
        &r,
        ErrorCode::ResetRefused,
        "ForgotPassword with the used code",
    )?;
    Ok("old code refused".into())
}

async fn forgot_normalised(ctx: Ctx) -> CaseResult {
    let u = ctx.new_user().await?;
    let mangled: String = u
        .recovery_code
        .replace('-', "")
        .to_ascii_lowercase()
        .chars()
        .enumerate()
        .flat_map(|(i, c)| if i % 4 == 3 { vec![c, ' '] } else { vec![c] })
        .collect();
    let r = forgot(
        &ctx,
        u.key,
        &u.userid,
        &u.email,
        &mangled,
        &ident::password(),
    )
    .await?;
    ok!(
        r,
        ForgotPassword,
        &format!("ForgotPassword with code {mangled:?}")
    );
    Ok(format!("{mangled:?} accepted"))
}

async fn forgot_refused(ctx: Ctx, i: usize) -> CaseResult {
    let u = ctx.new_user().await?;
    let other = ctx.new_user().await?;
    let (userid, email, code) = match i {
        0 => (
            u.userid.clone(),
            u.email.clone(),
            other.recovery_code.clone(),
        ),
        1 => (
            u.userid.clone(),
            other.email.clone(),
            u.recovery_code.clone(),
        ),
        _ => (ident::userid(), u.email.clone(), u.recovery_code.clone()),
    };
    let r = forgot(&ctx, u.key, &userid, &email, &code, &ident::password()).await?;
    expect_code(&r, ErrorCode::ResetRefused, "ForgotPassword")?;
    ctx.login(&u).await?;
    Ok("RESET_REFUSED; password unchanged".into())
}

async fn forgot_email_case(ctx: Ctx) -> CaseResult {
    let u = ctx.new_user().await?;
    let r = forgot(
        &ctx,
        u.key,
        &u.userid.to_ascii_uppercase(),
        &u.email.to_ascii_uppercase(),
        &u.recovery_code,
        &ident::password(),
    )
    .await?;
    ok!(
        r,
        ForgotPassword,
        "ForgotPassword with upper-case userid and e-mail"
    );
    Ok("case-insensitive".into())
}

async fn forgot_weak_first(ctx: Ctx) -> CaseResult {
    let u = ctx.new_user().await?;
    let mut c = ctx.connect(u.key).await?;
    // Six weak attempts with a wrong code: if they counted as failures the 6th would be RATE_LIMITED.
    for i in 0..6 {
        let r = c
            .request(req::forgot(
                &u.userid,
                &u.email,
                "AAAAA-AAAAA-AAAAA-AAAAA",
                "short",
            ))
            .await?;
        expect_code(
            &r,
            ErrorCode::WeakPassword,
            &format!("weak attempt {}", i + 1),
        )?;
    }
    let r = c
        .request(req::forgot(
            &u.userid,
            &u.email,
            &u.recovery_code,
            &u.userid.to_ascii_uppercase(),
        ))
        .await?;
    expect_code(
        &r,
        ErrorCode::WeakPassword,
        "new password equal to the userid",
    )?;
    let r = c
        .request(req::forgot(
            &u.userid,
            &u.email,
            &u.recovery_code,
            &ident::password(),
        ))
        .await?;
    ok!(r, ForgotPassword, "ForgotPassword after the weak attempts");
    Ok("WEAK_PASSWORD first; not counted as failures".into())
}

async fn forgot_key_unchanged(ctx: Ctx) -> CaseResult {
    let u = ctx.new_user().await?;
    let other = ident::other_key(u.key);
    let r = forgot(
        &ctx,
        other,
        &u.userid,
        &u.email,
        &u.recovery_code,
        &ident::password(),
    )
    .await?;
    ok!(r, ForgotPassword, "ForgotPassword from another key");
    let mut c = ctx.connect(u.key).await?;
    ok!(
        c.request(req::key_login(&u.userid, None)).await?,
        Login,
        "KeyLogin with the registered key after the reset"
    );
    Ok("identity key unchanged".into())
}

async fn forgot_not_logged_in(ctx: Ctx) -> CaseResult {
    let u = ctx.new_user().await?;
    let mut c = ctx.connect(u.key).await?;
    ok!(
        c.request(req::forgot(
            &u.userid,
            &u.email,
            &u.recovery_code,
            &ident::password()
        ))
        .await?,
        ForgotPassword,
        "ForgotPassword"
    );
    let r = c.request(req::find(&u.userid)).await?;
    expect_code(&r, ErrorCode::NotLoggedIn, "Find after ForgotPassword")?;
    Ok("still Authenticating".into())
}

async fn forgot_session_unaffected(ctx: Ctx) -> CaseResult {
    let (u, mut c) = ctx.online_user().await?;
    let r = forgot(
        &ctx,
        u.key,
        &u.userid,
        &u.email,
        &u.recovery_code,
        &ident::password(),
    )
    .await?;
    ok!(r, ForgotPassword, "ForgotPassword");
    let r = c.request(req::find(&u.userid)).await?;
    ok!(r, Find, "Find on the existing session after the reset");
    Ok("session unaffected".into())
}

/// Registers from one source address of the case's own: 60 must be served; with
/// `until_limited`, continue (up to 200) until one is RATE_LIMITED.
async fn register_rate(ctx: Ctx, until_limited: bool) -> CaseResult {
    let Some(source) = ctx.source() else {
        skip!("needs a loopback server: the case uses a source address of its own so that its registrations cannot limit other cases");
    };
    // Six connections: each must finish its share (two argon2 hashes per Register) within
    // LOGIN_DEADLINE (30 s), which three could miss on a loaded machine.
    const CONNS: usize = 6;
    let mut conns = Vec::new();
    for _ in 0..CONNS {
        conns.push(ctx.connect_from(ident::random_key(), Some(source)).await?);
    }
    let max = if until_limited { 200 } else { 60 };
    for i in 0..max {
        let userid = ident::userid();
        let c = &mut conns[i % CONNS];
        let r = c
            .request(req::register(
                &userid,
                &format!("{userid}@example.test"),
                &ident::password(),
            ))
            .await?;
        match &r {
            wire::response::Result::Register(_) => {}
            wire::response::Result::Error(e) if e.code == ErrorCode::RateLimited as i32 => {
                check!(
                    i >= 60,
                    "Register {} from one address within a minute was RATE_LIMITED; at least 60 per minute must be served",
                    i + 1
                );
                check!(e.retry_after_ms >= 1, "RATE_LIMITED with retry_after_ms 0");
                return Ok(format!(
                    "{i} served, then RATE_LIMITED (retry_after_ms {})",
                    e.retry_after_ms
                ));
            }
            other => fail!("Register {}: {}", i + 1, describe(other)),
        }
    }
    if until_limited {
        fail!("{max} Registers from one address were all served: no registration limit");
    }
    Ok(format!("{max} Registers from {source} served"))
}

// ---------------------------------------------------------------- limits

async fn fail_login(c: &mut Client, userid: &str, n: usize) -> Result<(), Verdict> {
    for i in 0..n {
        let r = c
            .request(req::login(userid, "wrong-password-0", None))
            .await?;
        expect_code(
            &r,
            ErrorCode::BadCredentials,
            &format!("failed Login {}", i + 1),
        )?;
    }
    Ok(())
}

fn check_retry(e: &wire::Error, max_ms: u64) -> Result<(), Verdict> {
    check!(
        e.retry_after_ms >= 1 && e.retry_after_ms <= max_ms,
        "retry_after_ms {} not in 1..={max_ms}",
        e.retry_after_ms
    );
    Ok(())
}

async fn login_lockout(ctx: Ctx) -> CaseResult {
    let u = ctx.new_user().await?;
    let mut c = ctx.connect(u.key).await?;
    fail_login(&mut c, &u.userid, 5).await?;
    let r = c.request(req::login(&u.userid, &u.password, None)).await?;
    let e = expect_code(
        &r,
        ErrorCode::RateLimited,
        "Login with the right password after 5 failures",
    )?;
    check_retry(&e, 1000)?;
    tokio::time::sleep(Duration::from_millis(e.retry_after_ms + 100)).await;
    let r = c.request(req::login(&u.userid, &u.password, None)).await?;
    ok!(r, Login, "Login after the lock ended");
    Ok(format!(
        "RATE_LIMITED, retry_after_ms {}; then LoginOk",
        e.retry_after_ms
    ))
}

async fn keylogin_no_account_lock(ctx: Ctx) -> CaseResult {
    let u = ctx.new_user().await?;
    // A stranger with another key, from one address of its own, on 15 connections at once.
    let source = ctx.source();
    let mut strangers = Vec::new();
    for _ in 0..15 {
        strangers.push(ctx.connect_from(ident::other_key(u.key), source).await?);
    }
    let mut ids = Vec::new();
    for s in &mut strangers {
        ids.push(s.send_request(req::key_login(&u.userid, None)).await?);
    }
    for (i, (s, id)) in strangers.iter_mut().zip(ids).enumerate() {
        let r = s.wait_response(id).await?.1;
        expect_code(
            &r,
            ErrorCode::BadCredentials,
            &format!("wrong-key KeyLogin {}", i + 1),
        )?;
    }
    let mut c = ctx.connect(u.key).await?;
    ok!(
        c.request(req::login(&u.userid, &u.password, None)).await?,
        Login,
        "the owner's Login after 15 wrong-key KeyLogins"
    );
    ok!(c.request(req::logout()).await?, Logout, "Logout");
    ok!(
        c.request(req::key_login(&u.userid, None)).await?,
        Login,
        "the owner's KeyLogin after 15 wrong-key KeyLogins"
    );
    Ok("wrong keys did not lock the account".into())
}

async fn keylogin_ignores_lock(ctx: Ctx) -> CaseResult {
    let u = ctx.new_user().await?;
    let mut thief = ctx.connect(ident::other_key(u.key)).await?;
    fail_login(&mut thief, &u.userid, 5).await?;
    let r = thief
        .request(req::login(&u.userid, &u.password, None))
        .await?;
    expect_code(
        &r,
        ErrorCode::RateLimited,
        "Login with the right password after 5 failures",
    )?;
    let mut c = ctx.connect(u.key).await?;
    ok!(
        c.request(req::key_login(&u.userid, None)).await?,
        Login,
        "KeyLogin with the registered key while the password is locked"
    );
    Ok("password locked, KeyLogin served".into())
}

async fn reserved_before_work(ctx: Ctx) -> CaseResult {
    let u = ctx.new_user().await?;
    let mut conns = Vec::new();
    for _ in 0..30 {
        conns.push(ctx.connect(ident::random_key()).await?);
    }
    let mut ids = Vec::new();
    for c in &mut conns {
        ids.push(
            c.send_request(req::login(&u.userid, "wrong-password-0", None))
                .await?,
        );
    }
    let (mut bad, mut limited) = (0, 0);
    for (c, id) in conns.iter_mut().zip(ids) {
        let r = c.wait_response(id).await?.1;
        match &r {
            wire::response::Result::Error(e) if e.code == ErrorCode::BadCredentials as i32 => {
                bad += 1
            }
            wire::response::Result::Error(e) if e.code == ErrorCode::RateLimited as i32 => {
                check_retry(e, 15 * 60 * 1000)?;
                limited += 1
            }
            other => fail!("concurrent wrong Login: {}", describe(other)),
        }
    }
    check!(
        bad <= LOGIN_FAIL_ACCOUNT_MAX as usize,
        "{bad} of 30 concurrent wrong Logins were evaluated (BAD_CREDENTIALS); at most {LOGIN_FAIL_ACCOUNT_MAX} may be"
    );
    Ok(format!("{bad} BAD_CREDENTIALS, {limited} RATE_LIMITED"))
}

async fn forgot_lockout(ctx: Ctx) -> CaseResult {
    let u = ctx.new_user().await?;
    let mut c = ctx.connect(u.key).await?;
    for i in 0..5 {
        let r = c
            .request(req::forgot(
                &u.userid,
                &u.email,
                "AAAAA-AAAAA-AAAAA-AAAAA",
                &ident::password(),
            ))
            .await?;
        expect_code(
            &r,
            ErrorCode::ResetRefused,
            &format!("refused ForgotPassword {}", i + 1),
        )?;
    }
    let r = c
        .request(req::forgot(
            &u.userid,
            &u.email,
            &u.recovery_code,
            &ident::password(),
        ))
        .await?;
    let e = expect_code(
        &r,
        ErrorCode::RateLimited,
        "ForgotPassword with the right code after 5 failures",
    )?;
    check_retry(&e, 1000)?;
    Ok(format!("RATE_LIMITED, retry_after_ms {}", e.retry_after_ms))
}

async fn shared_counters(ctx: Ctx) -> CaseResult {
    let u = ctx.new_user().await?;
    let mut c = ctx.connect(u.key).await?;
    fail_login(&mut c, &u.userid, 3).await?;
    for _ in 0..2 {
        let r = c
            .request(req::forgot(
                &u.userid,
                &u.email,
                "AAAAA-AAAAA-AAAAA-AAAAA",
                &ident::password(),
            ))
            .await?;
        expect_code(&r, ErrorCode::ResetRefused, "refused ForgotPassword")?;
    }
    let r = c.request(req::login(&u.userid, &u.password, None)).await?;
    expect_code(
        &r,
        ErrorCode::RateLimited,
        "Login with the right password after 3+2 mixed failures",
    )?;
    Ok("one counter for Login and ForgotPassword".into())
}

async fn unknown_account_locked(ctx: Ctx) -> CaseResult {
    let ghost = ident::userid();
    let mut c = ctx.connect(ident::random_key()).await?;
    fail_login(&mut c, &ghost, 5).await?;
    let r = c
        .request(req::login(&ghost, "wrong-password-0", None))
        .await?;
    expect_code(
        &r,
        ErrorCode::RateLimited,
        "6th Login for an unknown userid",
    )?;
    Ok("unknown userids are locked like real ones".into())
}

async fn lockout_case(ctx: Ctx) -> CaseResult {
    let u = ctx.new_user().await?;
    let mut c = ctx.connect(u.key).await?;
    let spellings = [
        u.userid.to_ascii_lowercase(),
        u.userid.to_ascii_uppercase(),
        flip_case(&u.userid),
        u.userid.clone(),
        u.userid.to_ascii_lowercase(),
    ];
    for (i, s) in spellings.iter().enumerate() {
        let r = c.request(req::login(s, "wrong-password-0", None)).await?;
        expect_code(
            &r,
            ErrorCode::BadCredentials,
            &format!("failed Login {} as {s}", i + 1),
        )?;
    }
    let r = c
        .request(req::login(
            &u.userid.to_ascii_uppercase(),
            &u.password,
            None,
        ))
        .await?;
    expect_code(
        &r,
        ErrorCode::RateLimited,
        "Login after 5 failures under different spellings",
    )?;
    Ok("failures counted case-insensitively".into())
}

async fn success_clears(ctx: Ctx) -> CaseResult {
    let u = ctx.new_user().await?;
    let mut c = ctx.connect(u.key).await?;
    fail_login(&mut c, &u.userid, 4).await?;
    ok!(
        c.request(req::login(&u.userid, &u.password, None)).await?,
        Login,
        "Login after 4 failures"
    );
    ok!(c.request(req::logout()).await?, Logout, "Logout");
    fail_login(&mut c, &u.userid, 4).await?;
    ok!(
        c.request(req::login(&u.userid, &u.password, None)).await?,
        Login,
        "Login after 4 more failures"
    );
    Ok("success cleared the counter".into())
}

async fn backoff_doubles(ctx: Ctx) -> CaseResult {
    let u = ctx.new_user().await?;
    let mut c = ctx.connect(u.key).await?;
    fail_login(&mut c, &u.userid, 5).await?;
    let r = c.request(req::login(&u.userid, &u.password, None)).await?;
    let e = expect_code(&r, ErrorCode::RateLimited, "attempt after 5 failures")?;
    tokio::time::sleep(Duration::from_millis(e.retry_after_ms + 100)).await;
    fail_login(&mut c, &u.userid, 1).await?;
    let r = c.request(req::login(&u.userid, &u.password, None)).await?;
    let e = expect_code(&r, ErrorCode::RateLimited, "attempt after 6 failures")?;
    check!(
        e.retry_after_ms > 1000 && e.retry_after_ms <= 2000,
        "retry_after_ms {} after the 6th failure, expected 1000 < x <= 2000",
        e.retry_after_ms
    );
    Ok(format!(
        "lock after the 6th failure: {} ms",
        e.retry_after_ms
    ))
}

async fn per_address(ctx: Ctx) -> CaseResult {
    let Some(source) = ctx.source() else {
        skip!("needs a loopback server: the case uses a source address of its own so that it cannot lock out other cases");
    };
    let u = ctx.new_user().await?;
    let mut conns = Vec::new();
    for _ in 0..3 {
        conns.push(ctx.connect_from(ident::random_key(), Some(source)).await?);
    }
    // 50 failures, each against a different unknown userid so no account lock interferes;
    // spread over three connections so no request bucket empties.
    for i in 0..50usize {
        let c = &mut conns[i % 3];
        let r = c
            .request(req::login(&ident::userid(), "wrong-password-0", None))
            .await?;
        expect_code(
            &r,
            ErrorCode::BadCredentials,
            &format!("failure {} from one address", i + 1),
        )?;
    }
    let mut c = ctx.connect_from(u.key, Some(source)).await?;
    let r = c.request(req::login(&u.userid, &u.password, None)).await?;
    let e = expect_code(
        &r,
        ErrorCode::RateLimited,
        "Login from the address after 50 failures",
    )?;
    check!(e.retry_after_ms >= 1, "retry_after_ms 0");
    let mut other = ctx.connect(u.key).await?;
    ok!(
        other
            .request(req::login(&u.userid, &u.password, None))
            .await?,
        Login,
        "the same Login from another address"
    );
    Ok(format!(
        "RATE_LIMITED from {source}, retry_after_ms {}; other addresses unaffected",
        e.retry_after_ms
    ))
}

// ---------------------------------------------------------------- Logout, sessions

async fn logout_ok(ctx: Ctx) -> CaseResult {
    let (_, mut c) = ctx.online_user().await?;
    ok!(c.request(req::logout()).await?, Logout, "Logout");
    Ok("LogoutOk".into())
}

async fn session_replaced(ctx: Ctx, by_key: bool) -> CaseResult {
    let (u, mut first) = ctx.online_user().await?;
    let mut second = ctx.connect(u.key).await?;
    let body = if by_key {
        req::key_login(&u.userid, None)
    } else {
        req::login(&u.userid, &u.password, None)
    };
    ok!(second.request(body).await?, Login, "second login");
    let closing = first.expect_close(Duration::from_secs(5)).await?;
    check!(
        closing.has_reason(wire::CloseReason::SessionReplaced),
        "the first connection ended with {closing}, expected Close SESSION_REPLACED"
    );
    ok!(
        second.request(req::find(&u.userid)).await?,
        Find,
        "Find on the new session"
    );
    Ok(format!("old connection: {closing}"))
}
