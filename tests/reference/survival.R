# Reference numbers for ppeval's survival code (Cox, Kaplan-Meier, RMST,
# competing risks).
#
# Run from the repository root:  Rscript tests/reference/survival.R
# Reads  tests/reference/rossi.csv     (lifelines.datasets.load_rossi())
# Writes tests/reference/cr_fixture.csv and tests/reference/survival.json
#
# Row numbers are 1-based rows of the CSV files.

suppressPackageStartupMessages({
  library(survival)
  library(cmprsk)
})

out_dir <- "tests/reference"
source(file.path(out_dir, "json_full.R"))   # write_json_full(): exact doubles

# ===========================================================================
# a. Cox models on the Rossi recidivism data
# ===========================================================================
rossi <- read.csv(file.path(out_dir, "rossi.csv"))   # 432 rows
n_rossi <- nrow(rossi)
rossi$row <- seq_len(n_rossi)
rossi$cl <- ceiling(rossi$row / 2)      # clusters: rows (1,2), (3,4), ...
rossi$w <- 1 + (rossi$row %% 3)         # case weights 2, 3, 1, 2, 3, 1, ...

full <- Surv(week, arrest) ~ fin + age + race + wexp + mar + paro + prio

# What we keep from a coxph fit.
#  se_model:  sqrt(diag(naive.var)) if the fit is robust, else sqrt(diag(var))
#  se_robust: sqrt(diag(var)) of a robust fit (sum over clusters of the
#             dfbeta residuals, cross-product; no small-sample factor)
cox_summary <- function(fit) {
  robust <- !is.null(fit$naive.var)
  V_model <- if (robust) fit$naive.var else fit$var
  out <- list(
    call = paste(deparse(fit$call), collapse = " "),
    ties = fit$method,
    n = fit$n, nevent = fit$nevent,
    coef_names = names(coef(fit)),
    coef = I(unname(coef(fit))),
    se_model = I(sqrt(diag(V_model))),
    var_model = unname(V_model),
    loglik = fit$loglik,                 # c(null model, fitted model)
    score_test = unname(fit$score),
    wald_test = unname(fit$wald.test),
    concordance = unname(fit$concordance["concordance"]),
    iter = fit$iter
  )
  if (robust) {
    out$se_robust <- I(sqrt(diag(fit$var)))
    out$var_robust <- unname(fit$var)
    out$robust_score_test <- unname(fit$rscore)
  }
  out
}

cox <- list()
cox$efron             <- coxph(full, data = rossi, ties = "efron")
cox$efron_robust      <- coxph(full, data = rossi, ties = "efron", robust = TRUE)
cox$efron_cluster     <- coxph(full, data = rossi, ties = "efron", cluster = cl)
cox$efron_weighted_cluster <- coxph(full, data = rossi, ties = "efron",
                                    weights = w, cluster = cl)
cox$efron_weighted    <- coxph(full, data = rossi, ties = "efron", weights = w)
cox$breslow           <- coxph(full, data = rossi, ties = "breslow")
cox$breslow_cluster   <- coxph(full, data = rossi, ties = "breslow", cluster = cl)
cox$breslow_weighted_cluster <- coxph(full, data = rossi, ties = "breslow",
                                      weights = w, cluster = cl)
cox$fin_cluster       <- coxph(Surv(week, arrest) ~ fin, data = rossi,
                               ties = "efron", cluster = cl)
cox$fin_weighted_cluster <- coxph(Surv(week, arrest) ~ fin, data = rossi,
                                  ties = "efron", weights = w, cluster = cl)
cox$fin_breslow_weighted_cluster <- coxph(Surv(week, arrest) ~ fin, data = rossi,
                                          ties = "breslow", weights = w, cluster = cl)
cox_out <- lapply(cox, cox_summary)

# dfbeta residuals of the single-covariate weighted + clustered model.
# residuals(type = "dfbeta") is weighted by default (weighted = TRUE for
# dfbeta): row i = w_i * (score residual_i) %*% naive.var.  The robust
# variance is crossprod of their per-cluster sums.
fit1 <- cox$fin_weighted_cluster
dfb <- residuals(fit1, type = "dfbeta")
dfb_cl <- residuals(fit1, type = "dfbeta", collapse = rossi$cl)
stopifnot(isTRUE(all.equal(sum(rowsum(dfb, rossi$cl)^2), fit1$var[1, 1])))
cox_out$fin_weighted_cluster$dfbeta <- unname(as.vector(dfb))
cox_out$fin_weighted_cluster$dfbeta_collapsed_by_cl <- unname(as.vector(dfb_cl))
cox_out$fin_weighted_cluster$score_resid_unweighted <-
  unname(as.vector(residuals(fit1, type = "score", weighted = FALSE)))
cox_out$fin_weighted_cluster$note <- paste(
  "dfbeta = residuals(fit, type='dfbeta') (weighted by w, one per row);",
  "var_robust = sum over clusters of (sum of dfbeta in cluster)^2")

# ===========================================================================
# b. Kaplan-Meier by fin, log-rank test;  d. RMST up to week 52
# ===========================================================================
# survfit's std.err is the standard error of the cumulative hazard
# (= se of log S); confidence intervals are conf.type = "log".
km_strata <- function(fit) {
  st <- if (is.null(fit$strata)) c(all = length(fit$time)) else fit$strata
  grp <- rep(names(st), st)
  lapply(setNames(names(st), names(st)), function(s) {
    k <- grp == s
    list(time = fit$time[k], n_risk = fit$n.risk[k], n_event = fit$n.event[k],
         n_censor = fit$n.censor[k], surv = fit$surv[k], std_err = fit$std.err[k],
         lower = fit$lower[k], upper = fit$upper[k], cumhaz = fit$cumhaz[k])
  })
}
rmst_table <- function(fit, tau = 52) {
  tab <- summary(fit, rmean = tau)$table
  list(strata = rownames(tab), rmean = unname(tab[, "rmean"]),
       se_rmean = unname(tab[, "se(rmean)"]), tau = tau,
       median = unname(tab[, "median"]))
}

km <- survfit(Surv(week, arrest) ~ fin, data = rossi)
km_w <- survfit(Surv(week, arrest) ~ fin, data = rossi, weights = w)
km_w_robust <- survfit(Surv(week, arrest) ~ fin, data = rossi, weights = w,
                       robust = TRUE, id = row)
lr <- survdiff(Surv(week, arrest) ~ fin, data = rossi)

km_out <- list(
  unweighted = list(call = "survfit(Surv(week, arrest) ~ fin, data = rossi)",
                    strata = km_strata(km), rmst = rmst_table(km)),
  weighted = list(
    call = "survfit(Surv(week, arrest) ~ fin, data = rossi, weights = w)",
    note = "integer weights -> not robust: Greenwood-type se with w as case weights",
    strata = km_strata(km_w), rmst = rmst_table(km_w)),
  weighted_robust = list(
    call = "survfit(Surv(week, arrest) ~ fin, data = rossi, weights = w, robust = TRUE, id = row)",
    note = "infinitesimal-jackknife (robust) std.err",
    strata = km_strata(km_w_robust)),
  logrank = list(call = "survdiff(Surv(week, arrest) ~ fin, data = rossi)",
                 chisq = lr$chisq, df = length(lr$n) - 1,
                 p = pchisq(lr$chisq, length(lr$n) - 1, lower.tail = FALSE),
                 observed = unname(lr$obs), expected = unname(lr$exp),
                 variance = unname(lr$var))
)

# ===========================================================================
# c. Competing-risks fixture
# ===========================================================================
set.seed(1)
n <- 300
cr <- data.frame(id = seq_len(n))
cr$time   <- sample(1:40, n, replace = TRUE)
cr$status <- sample(0:2, n, replace = TRUE, prob = c(.3, .4, .3))  # 0 censored, 1 event, 2 competing
cr$group  <- rep(0:1, each = 150)
cr$x      <- rnorm(n)
cr$w2     <- runif(n, 0.5, 2)
cr_csv <- cr
cr_csv$x <- fmt_double(cr$x)
cr_csv$w2 <- fmt_double(cr$w2)
write.csv(cr_csv, file.path(out_dir, "cr_fixture.csv"), row.names = FALSE, quote = FALSE)
cr <- read.csv(file.path(out_dir, "cr_fixture.csv"))   # use exactly what Python reads
cr$fstatus <- factor(cr$status, 0:2, labels = c("censor", "event", "competing"))

# Aalen-Johansen (survfit, multi-state). pstate columns follow fit$states
# ("(s0)" = still event free); std.err is the infinitesimal-jackknife se
# (default for multi-state curves).
aj_strata <- function(fit) {
  st <- fit$strata
  grp <- rep(names(st), st)
  lapply(setNames(names(st), names(st)), function(s) {
    k <- grp == s
    list(time = fit$time[k], n_risk = unname(fit$n.risk[k, , drop = FALSE]),
         n_event = unname(fit$n.event[k, , drop = FALSE]),
         n_censor = fit$n.censor[k],
         pstate = unname(fit$pstate[k, , drop = FALSE]),
         std_err = unname(fit$std.err[k, , drop = FALSE]))
  })
}
aj <- survfit(Surv(time, fstatus) ~ group, data = cr)
aj_w <- survfit(Surv(time, fstatus) ~ group, data = cr, weights = w2)

# cmprsk::cuminc: curves "<group> <cause>", Gray's test per cause
ci <- cuminc(cr$time, cr$status, cr$group, cencode = 0)
ci_curves <- ci[setdiff(names(ci), "Tests")]
cuminc_out <- list(
  call = "cmprsk::cuminc(time, status, group, cencode = 0)",
  curves = lapply(ci_curves, function(z) list(time = z$time, est = z$est, var = z$var)),
  tests = list(cause = rownames(ci$Tests), stat = unname(ci$Tests[, "stat"]),
               pv = unname(ci$Tests[, "pv"]), df = unname(ci$Tests[, "df"]))
)

# Fine-Gray with cmprsk::crr
fg_crr <- crr(cr$time, cr$status, cov1 = cbind(group = cr$group, x = cr$x),
              failcode = 1, cencode = 0)
crr_out <- list(call = "cmprsk::crr(time, status, cov1 = cbind(group, x), failcode = 1, cencode = 0)",
                coef_names = names(fg_crr$coef), coef = unname(fg_crr$coef),
                se = sqrt(diag(fg_crr$var)), var = unname(fg_crr$var),
                loglik = fg_crr$loglik, converged = fg_crr$converged)

# Fine-Gray with survival::finegray + weighted coxph
fg <- finegray(Surv(time, fstatus) ~ ., data = cr, etype = "event")
fg_fit <- coxph(Surv(fgstart, fgstop, fgstatus) ~ group + x, data = fg, weights = fgwt)
fg_fit_rob <- coxph(Surv(fgstart, fgstop, fgstatus) ~ group + x, data = fg,
                    weights = fgwt, cluster = id)
# Breslow ties: closer to cmprsk::crr (which uses Breslow), but still not
# equal (the two differ in how censoring weights treat tied times)
fg_fit_breslow <- coxph(Surv(fgstart, fgstop, fgstatus) ~ group + x, data = fg,
                        weights = fgwt, ties = "breslow", cluster = id)
# case weights w2: fgwt * w2 (finegray(weights = w2) gives the same fgwt: the
# censoring distribution inside finegray is always unweighted)
fg$fgwt_w2 <- fg$fgwt * fg$w2
fg_w <- finegray(Surv(time, fstatus) ~ ., data = cr, etype = "event", weights = w2)
stopifnot(isTRUE(all.equal(fg_w$fgwt, fg$fgwt_w2)))
fg_fit_w2 <- coxph(Surv(fgstart, fgstop, fgstatus) ~ group + x, data = fg,
                   weights = fgwt_w2, cluster = id)

# cause-specific Cox models
cs1 <- coxph(Surv(time, status == 1) ~ group + x, data = cr)
cs2 <- coxph(Surv(time, status == 2) ~ group + x, data = cr)
cs1_w <- coxph(Surv(time, status == 1) ~ group + x, data = cr, weights = w2, cluster = id)

finegray_out <- list(
  call_expand = 'finegray(Surv(time, factor(status, 0:2, labels = c("censor","event","competing"))) ~ ., data = cr, etype = "event")',
  n_rows_expanded = nrow(fg),
  first30 = fg[1:30, c("id", "fgstart", "fgstop", "fgstatus", "fgwt")],
  expanded = fg[, c("id", "fgstart", "fgstop", "fgstatus", "fgwt")],
  model = cox_summary(fg_fit),
  robust_cluster_id = cox_summary(fg_fit_rob),
  breslow_cluster_id = cox_summary(fg_fit_breslow),
  w2_cluster_id = cox_summary(fg_fit_w2)
)

cr_out <- list(
  fixture = paste("set.seed(1); n = 300; time = sample(1:40, n, TRUE);",
                  "status = sample(0:2, n, TRUE, prob = c(.3, .4, .3));",
                  "group = rep(0:1, each = 150); x = rnorm(n); w2 = runif(n, 0.5, 2)"),
  aalen_johansen = list(call = "survfit(Surv(time, fstatus) ~ group, data = cr)",
                        states = aj$states, strata = aj_strata(aj)),
  aalen_johansen_weighted = list(call = "survfit(Surv(time, fstatus) ~ group, data = cr, weights = w2)",
                                 states = aj_w$states, strata = aj_strata(aj_w)),
  cuminc = cuminc_out,
  crr = crr_out,
  finegray = finegray_out,
  cause_specific = list(cause1 = cox_summary(cs1), cause2 = cox_summary(cs2),
                        cause1_w2_cluster_id = cox_summary(cs1_w))
)

# ===========================================================================
result <- list(
  r_version = R.version.string,
  survival_version = as.character(packageVersion("survival")),
  cmprsk_version = as.character(packageVersion("cmprsk")),
  rossi = list(
    note = paste("rossi.csv from lifelines load_rossi(); cl = ceiling(row/2);",
                 "w = 1 + (row %% 3); full model: fin + age + race + wexp + mar + paro + prio"),
    cl = rossi$cl, w = rossi$w,
    cox = cox_out,
    km = km_out
  ),
  competing_risks = cr_out
)
write_json_full(result, file.path(out_dir, "survival.json"))

cat("Rossi full model, efron, cluster: se_robust(fin) =",
    cox_out$efron_cluster$se_robust[1], "\n")
cat("fin ~ cluster: coef", cox_out$fin_cluster$coef, "se_robust", cox_out$fin_cluster$se_robust, "\n")
cat("crr coef", crr_out$coef, " finegray coef", coef(fg_fit), "\n")
print(cuminc_out$tests)
print(km_out$unweighted$rmst)
