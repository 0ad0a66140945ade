# Reference numbers for ppeval.estimate.EnrolmentCensoring: a Cox model of time to
# enrolment on (entry, exit] data with Breslow ties, its Breslow baseline cumulative
# hazard, and the probability of not yet having enrolled between two days.
#
# Run from the repository root:  Rscript tests/reference/censoring.R
# Writes tests/reference/censoring_fixture.csv and tests/reference/censoring.json

suppressPackageStartupMessages(library(survival))
out_dir <- "tests/reference"
source(file.path(out_dir, "json_full.R"))

set.seed(20261124)
n <- 300
x <- round(rnorm(n), 3)
z <- rbinom(n, 1, 0.4)
entry <- floor(runif(n, 0, 60)) * (runif(n) < 0.5)        # half enter at day 0
enrol <- entry + ceiling(rexp(n, 1 / (150 * exp(-0.7 * x - 0.5 * z))))
leave <- entry + ceiling(rexp(n, 1 / 250))
exit <- pmin(enrol, leave, entry + 400)
enrolled <- as.integer(enrol <= leave & enrol <= entry + 400)
fx <- data.frame(row = seq_len(n), entry = entry, exit = exit, enrolled = enrolled, x = x, z = z)
write.csv(fx, file.path(out_dir, "censoring_fixture.csv"), row.names = FALSE)
fx <- read.csv(file.path(out_dir, "censoring_fixture.csv"))

fit <- coxph(Surv(entry, exit, enrolled) ~ x + z, data = fx, ties = "breslow")
bh <- basehaz(fit, centered = FALSE)
bh <- bh[c(TRUE, diff(bh$hazard) > 0), ]          # the days with an enrolment
# P(no enrolment on a day in (a, b) | at risk on day a) for a few (row, a, b)
H <- stepfun(bh$time, c(0, bh$hazard))           # right-continuous H(t)
Hminus <- function(t) H(t - 1e-9)                 # H(t-)
lp <- as.vector(as.matrix(fx[, c("x", "z")]) %*% coef(fit))
probe <- data.frame(row = c(1, 2, 3, 10, 50), a = c(0, 10, 30, 0, 45), b = c(100, 200, 30, 365, 46))
probe$G <- exp(-(Hminus(probe$b) - H(probe$a)) * exp(lp[probe$row]))
probe$G[probe$b <= probe$a] <- 1

write_json_full(list(
  call = "coxph(Surv(entry, exit, enrolled) ~ x + z, ties = 'breslow'); basehaz(fit, centered = FALSE)",
  coef = I(unname(coef(fit))), se = I(unname(sqrt(diag(fit$var)))),
  n = fit$n, nevent = fit$nevent,
  baseline_time = I(bh$time), baseline_cumhaz = I(bh$hazard),
  probe_row = I(probe$row), probe_a = I(probe$a), probe_b = I(probe$b), probe_G = I(probe$G)
), file.path(out_dir, "censoring.json"))
