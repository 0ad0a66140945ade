# Reference numbers for ppeval's nearest-neighbour propensity-score matching.
#
# Run from the repository root:  Rscript tests/reference/lalonde_matchit.R
# Writes tests/reference/lalonde_matchit.json and tests/reference/lalonde.csv.
#
# Debian ships MatchIt 4.5.1, whose C++ code for a numeric distance vector
# (nn_matchC_vec.cpp) calls C `abs()` on doubles, so distance differences are
# truncated to integers (MatchIt issue #163, fixed in 4.5.2+).  With
# link = "linear.logit" every |lp_i - lp_j| < 1 becomes 0 and the caliper is
# silently ignored (precisely: a control is accepted iff |lp_i - lp_j| < 1,
# i.e. the caliper becomes 1 logit unit, and nearest-left/right choices are
# made on truncated differences).  We reproduce the fixed (4.5.4) behaviour by passing the
# logit linear predictor rescaled so that its range is 1e9: truncation then
# loses < 1e-9 of the range, and std.caliper = TRUE rescales the caliper
# (0.2 * sd(distance)) by the same factor.  A plain-R greedy matcher on the
# unscaled lp (greedy_nn below) checks that the resulting matches are the
# exact-arithmetic ones.

suppressPackageStartupMessages({
  library(MatchIt)
  library(sandwich)
})

out_dir <- "tests/reference"
source(file.path(out_dir, "json_full.R"))   # write_json_full(): exact doubles

data("lalonde", package = "MatchIt")
n <- nrow(lalonde)                                  # 614
lalonde$y <- as.numeric(lalonde$re78 > 0)           # binary outcome

# Data as MatchIt has it (row names NSW1..NSW185, PSID1..PSID429); earnings
# written with the shortest decimal that round-trips exactly.
lalonde_csv <- data.frame(row = seq_len(n), rowname = rownames(lalonde),
                          lalonde[, c("treat", "age", "educ", "race", "married",
                                      "nodegree", "re74", "re75", "re78")])
for (v in c("re74", "re75", "re78"))
  lalonde_csv[[v]] <- fmt_double(lalonde_csv[[v]])
write.csv(lalonde_csv, file.path(out_dir, "lalonde.csv"), row.names = FALSE,
          quote = FALSE)

# ---------------------------------------------------------------------------
# Propensity score model and scaled distance
# ---------------------------------------------------------------------------
f <- treat ~ age + educ + race + married + nodegree + re74 + re75
ps_fit <- glm(f, family = binomial, data = lalonde)
lp <- unname(predict(ps_fit, type = "link"))        # logit linear predictor
ps <- unname(fitted(ps_fit))
scale_factor <- 1e9 / diff(range(lp))
dist_scaled <- lp * scale_factor
caliper_sd <- 0.2                                   # in SDs of the distance
caliper_lp <- caliper_sd * sd(lp)                   # caliper on the lp scale

# ---------------------------------------------------------------------------
# Plain-R greedy nearest-neighbour matching with exact doubles (the MatchIt
# 4.5.x nn_matchC_vec algorithm without the integer truncation):
#  * all units sorted by distance (stable ascending, sort.list);
#  * ratio passes r = 1..ratio; in each pass the treated units are visited in
#    `treated_order` (MatchIt m.order = "largest": decreasing distance);
#  * a treated unit looks for the closest still-available control on its left
#    and on its right in the sorted order (skipping controls already matched
#    to it); a side whose closest available control is outside the caliper
#    gives nothing; the left one (smaller distance) wins ties (MatchIt's `<=`);
#  * without replacement a control is used once; with replacement unlimited.
# `tol` treats |dl - dr| <= tol as a tie: lalonde has exact mathematical ties
# (e.g. treated row 71 vs controls 585 and 577: age +/-10, educ -/+1) that
# floating point breaks at the 1e-16 level; with tol = 1e-9 * range(lp) the
# result equals MatchIt's (whose truncation makes them ties).
# Returns an n1 x ratio matrix of 1-based row indices (NA = no match), with
# attribute "ties": the treated/control pairs decided by the tie rule.
# ---------------------------------------------------------------------------
greedy_nn <- function(distance, treat, ratio = 1, caliper = Inf,
                      replace = FALSE, treated_order = NULL,
                      tol = 1e-9 * diff(range(distance))) {
  n <- length(distance)
  treated <- which(treat == 1)
  if (is.null(treated_order))
    treated_order <- order(distance[treated], decreasing = TRUE)
  rank <- integer(n)
  rank[sort.list(distance)] <- seq_len(n)
  available <- treat == 0
  mm <- matrix(NA_integer_, length(treated), ratio)
  ties <- NULL
  for (r in seq_len(ratio)) {
    for (i in treated_order) {
      t <- treated[i]
      cand <- setdiff(which(available), mm[i, ])
      left <- cand[rank[cand] < rank[t]]
      right <- cand[rank[cand] > rank[t]]
      kl <- if (length(left)) left[which.max(rank[left])] else NA
      kr <- if (length(right)) right[which.min(rank[right])] else NA
      dl <- abs(distance[kl] - distance[t])
      dr <- abs(distance[kr] - distance[t])
      if (!is.na(kl) && dl > caliper) kl <- NA
      if (!is.na(kr) && dr > caliper) kr <- NA
      if (!is.na(kl) && !is.na(kr) && abs(dl - dr) <= tol)
        ties <- rbind(ties, data.frame(pass = r, treated = t, chosen_left = kl,
                                       other_right = kr, d_left = dl, d_right = dr))
      k <- if (!is.na(kl) && !is.na(kr)) { if (dl <= dr + tol) kl else kr }
           else if (!is.na(kl)) kl else kr
      if (is.na(k)) next
      mm[i, r] <- k
      if (!replace) available[k] <- FALSE
    }
  }
  attr(mm, "ties") <- ties
  mm
}

# match.matrix (character row names) -> 1-based integer row indices
mm_to_index <- function(m) {
  mm <- m$match.matrix
  idx <- matrix(match(mm, rownames(lalonde)), nrow(mm), ncol(mm))
  rownames(idx) <- NULL
  idx
}

table_to_list <- function(tab) {
  c(list(rows = rownames(tab)),
    setNames(lapply(colnames(tab), function(cn) unname(tab[, cn])), colnames(tab)))
}

# Outcome analysis on the matched data.
#  * ATT of y as the difference in weighted means (treated weights are 1);
#  * lm(y ~ treat, weights) -> risk difference;
#  * glm(y ~ treat, quasibinomial, weights) -> log odds ratio
#    (binomial gives identical coefficients; quasibinomial avoids the
#    non-integer-weights warning; the sandwich SEs do not depend on the
#    dispersion);
#  * SEs: sandwich::vcovCL(fit, cluster = ~subclass) with its defaults
#    type = "HC1", cadjust = TRUE, i.e. meat scaled by G/(G-1) * (n-1)/(n-k).
#  With replacement there is no subclass: we record HC1 (vcovHC type "HC1")
#  on match.data, and the two-way cluster (~subclass + id) on get_matches().
outcome_analysis <- function(m, replace = FALSE) {
  md <- match.data(m, data = lalonde, drop.unmatched = TRUE)
  w <- md$weights
  att_diff <- weighted.mean(md$y[md$treat == 1], w[md$treat == 1]) -
              weighted.mean(md$y[md$treat == 0], w[md$treat == 0])
  fit_lm <- lm(y ~ treat, data = md, weights = weights)
  fit_glm <- glm(y ~ treat, data = md, weights = weights,
                 family = quasibinomial)
  res <- list(
    n_matched_rows = nrow(md),
    sum_weights_treated = sum(w[md$treat == 1]),
    sum_weights_control = sum(w[md$treat == 0]),
    mean_y_treated = weighted.mean(md$y[md$treat == 1], w[md$treat == 1]),
    mean_y_control = weighted.mean(md$y[md$treat == 0], w[md$treat == 0]),
    att_diff_weighted_means = att_diff,
    lm_coef = unname(coef(fit_lm)),
    glm_coef = unname(coef(fit_glm)),
    glm_odds_ratio = unname(exp(coef(fit_glm)["treat"])),
    lm_se_model = unname(sqrt(diag(vcov(fit_lm)))),
    glm_se_model_quasibinomial = unname(sqrt(diag(vcov(fit_glm))))
  )
  if (!replace) {
    V_lm <- vcovCL(fit_lm, cluster = ~subclass)            # type HC1, cadjust TRUE
    V_glm <- vcovCL(fit_glm, cluster = ~subclass)
    res$vcovCL_settings <- "sandwich::vcovCL(fit, cluster = ~subclass), defaults type='HC1', cadjust=TRUE"
    res$n_clusters <- length(unique(md$subclass))
    res$lm_vcovCL <- unname(V_lm)
    res$lm_se_cluster <- unname(sqrt(diag(V_lm)))
    res$glm_vcovCL <- unname(V_glm)
    res$glm_se_cluster <- unname(sqrt(diag(V_glm)))
    # also HC0 without the cluster adjustment, to help pin down conventions
    res$lm_se_cluster_HC0_noadj <- unname(sqrt(diag(
      vcovCL(fit_lm, cluster = ~subclass, type = "HC0", cadjust = FALSE))))
    res$glm_se_cluster_HC0_noadj <- unname(sqrt(diag(
      vcovCL(fit_glm, cluster = ~subclass, type = "HC0", cadjust = FALSE))))
  } else {
    res$lm_se_HC1 <- unname(sqrt(diag(vcovHC(fit_lm, type = "HC1"))))
    res$glm_se_HC1 <- unname(sqrt(diag(vcovHC(fit_glm, type = "HC1"))))
    gm <- get_matches(m, data = lalonde)
    gm_lm <- lm(y ~ treat, data = gm, weights = weights)
    gm_glm <- glm(y ~ treat, data = gm, weights = weights, family = quasibinomial)
    res$get_matches_n_rows <- nrow(gm)
    res$get_matches_lm_coef <- unname(coef(gm_lm))
    res$get_matches_lm_se_cluster_subclass_id <- unname(sqrt(diag(
      vcovCL(gm_lm, cluster = ~subclass + id))))
    res$get_matches_glm_se_cluster_subclass_id <- unname(sqrt(diag(
      vcovCL(gm_glm, cluster = ~subclass + id))))
  }
  res$coef_names <- c("(Intercept)", "treat")
  res
}

run_matchit <- function(label, ratio = 1, replace = FALSE, caliper = TRUE) {
  args <- list(formula = f, data = lalonde, method = "nearest",
               distance = dist_scaled, m.order = "largest",
               ratio = ratio, replace = replace)
  if (caliper) { args$caliper <- caliper_sd; args$std.caliper <- TRUE }
  m <- do.call(matchit, args)

  # Check against exact-arithmetic greedy matching on the unscaled lp.
  # (with replace = TRUE MatchIt uses m.order = "data"; order is irrelevant then)
  g <- greedy_nn(lp, lalonde$treat, ratio = ratio, replace = replace,
                 caliper = if (caliper) caliper_lp else Inf)
  idx <- mm_to_index(m)
  stopifnot(identical(is.na(idx), is.na(g)), all(idx == g, na.rm = TRUE))
  # caliper decisions within 1e-9 of the boundary would also be fragile
  d_pairs <- abs(lp[rep(which(lalonde$treat == 1), ncol(idx))] - lp[as.vector(idx)])
  near_caliper <- if (caliper) sum(abs(d_pairs - caliper_lp) < 1e-9, na.rm = TRUE) else 0

  # summary() with the distance row on the lp scale (as MatchIt 4.5.4 with
  # distance = "glm", link = "linear.logit" would report it)
  m_lp <- m
  m_lp$distance <- setNames(lp, rownames(lalonde))
  s <- summary(m_lp)
  s_scaled <- summary(m)

  treated_rows <- which(lalonde$treat == 1)
  pairs <- data.frame(treated = rep(treated_rows, ncol(idx)),
                      control = as.vector(idx),
                      slot = rep(seq_len(ncol(idx)), each = nrow(idx)))
  pairs <- pairs[!is.na(pairs$control), ]
  pairs <- pairs[order(pairs$treated, pairs$slot), ]

  list(
    label = label,
    call = sprintf(paste0("matchit(treat ~ age + educ + race + married + nodegree + re74 + re75, ",
                          "data = lalonde, method = \"nearest\", distance = lp * 1e9 / diff(range(lp)), ",
                          "m.order = \"largest\", ratio = %d, replace = %s%s)"),
                   ratio, replace,
                   if (caliper) ", caliper = 0.2, std.caliper = TRUE" else ""),
    settings = list(ratio = ratio, replace = replace,
                    caliper = if (caliper) caliper_sd else NULL,
                    std_caliper = caliper, m_order = if (replace) "data (forced by replace=TRUE)" else "largest"),
    caliper_lp_scale = if (caliper) caliper_lp else NULL,
    caliper_scaled_distance = if (caliper) unname(m$caliper) else NULL,
    n_treated_matched = sum(rowSums(!is.na(idx)) > 0),
    n_pairs = nrow(pairs),
    match_matrix_treated_rows = treated_rows,
    match_matrix = idx,                      # 185 x ratio, 1-based rows, NA = unmatched
    match_matrix_rownames = m$match.matrix,  # as MatchIt returns it (row names)
    pairs = pairs,
    tie_decisions = attr(g, "ties"),         # left (lower lp) chosen on ties
    n_pairs_within_1e9_of_caliper = near_caliper,
    weights = unname(m$weights),
    subclass = if (is.null(m$subclass)) NULL else unname(as.integer(as.character(m$subclass))),
    nn = table_to_list(s$nn),
    summary_all = table_to_list(s$sum.all),
    summary_matched = table_to_list(s$sum.matched),
    summary_matched_distance_row_scaled = unname(s_scaled$sum.matched["distance", ]),
    max_abs_smd_matched_covariates = max(abs(s$sum.matched[-1, "Std. Mean Diff."])),
    outcome = outcome_analysis(m, replace = replace)
  )
}

runs <- list(
  main = run_matchit("ratio=1, caliper=0.2 SD, no replacement"),
  ratio2 = run_matchit("ratio=2, caliper=0.2 SD, no replacement", ratio = 2),
  replace = run_matchit("ratio=1, caliper=0.2 SD, with replacement", replace = TRUE),
  nocaliper = run_matchit("ratio=1, no caliper, no replacement", caliper = FALSE)
)

# What plain MatchIt 4.5.1 does with the unscaled lp (the bug): the 0.2 SD
# caliper is replaced by |lp difference| < 1, so 131 instead of 117 treated
# units get a match.
m_bug <- matchit(f, data = lalonde, method = "nearest", distance = lp,
                 m.order = "largest", caliper = caliper_sd, std.caliper = TRUE)

result <- list(
  description = paste(
    "MatchIt lalonde (614 rows). PS model glm(treat ~ age + educ + race + married +",
    "nodegree + re74 + re75, binomial). Matching on the logit linear predictor lp",
    "(passed to MatchIt 4.5.1 as lp * 1e9 / diff(range(lp)) to avoid issue #163).",
    "Row indices are 1-based rows of lalonde.csv. y = as.numeric(re78 > 0)."),
  r_version = R.version.string,
  matchit_version = as.character(packageVersion("MatchIt")),
  sandwich_version = as.character(packageVersion("sandwich")),
  ps_model = list(
    coef_names = names(coef(ps_fit)),
    coef = unname(coef(ps_fit)),
    se = unname(sqrt(diag(vcov(ps_fit))))
  ),
  lp = lp,
  ps = ps,
  sd_lp = sd(lp),
  range_lp = range(lp),
  scale_factor = scale_factor,
  caliper_lp_scale = caliper_lp,
  runs = runs,
  matchit451_unscaled_lp_bug = list(
    note = "MatchIt 4.5.1 with distance = lp (unscaled), caliper 0.2 SD: truncation makes it |diff| < 1",
    n_treated_matched = sum(!is.na(m_bug$match.matrix[, 1]))
  )
)

write_json_full(result, file.path(out_dir, "lalonde_matchit.json"))

cat("main run: pairs =", runs$main$n_pairs,
    " max|SMD| =", runs$main$max_abs_smd_matched_covariates,
    " ATT RD =", runs$main$outcome$lm_coef[2],
    " SE =", runs$main$outcome$lm_se_cluster[2], "\n")
for (r in runs) cat(r$label, ": treated matched", r$n_treated_matched,
                    " pairs", r$n_pairs, "\n")
cat("4.5.1 bug, unscaled lp: treated matched", result$matchit451_unscaled_lp_bug$n_treated_matched, "\n")
