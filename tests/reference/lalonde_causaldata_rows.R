# Locate MatchIt's `lalonde` (614 rows) inside the PyPI package causaldata.
#
# causaldata (0.1.5, the newest on PyPI) has no single object equal to it:
#  * rows 1-185 (NSW1..NSW185, treat = 1) are the treat == 1 rows of
#    causaldata.nsw_mixtape, in the same order;
#  * rows 186-614 (PSID1..PSID429, treat = 0) are 429 scattered rows of
#    causaldata.cps_mixtape (all labelled data_id "CPS1").
# This script finds those cps_mixtape rows and writes their 0-based positions
# to lalonde_causaldata_rows.json; build_lalonde_from_causaldata.py uses them.
#
# Input: CSVs written by Python from causaldata (pandas to_csv writes the
# float32 earnings with their shortest float32 repr, e.g. 9930.046):
#   python -c "from causaldata import nsw_mixtape, cps_mixtape; \
#     nsw_mixtape.load_pandas().data.to_csv('/tmp/nsw.csv', index=False); \
#     cps_mixtape.load_pandas().data.to_csv('/tmp/cps.csv', index=False)"
# Run from the repository root: Rscript tests/reference/lalonde_causaldata_rows.R

source("tests/reference/json_full.R")
data("lalonde", package = "MatchIt")
nsw <- read.csv("/tmp/nsw.csv")
cps <- read.csv("/tmp/cps.csv")

# causaldata columns -> MatchIt columns
to_matchit <- function(d) data.frame(
  treat = d$treat, age = d$age, educ = d$educ,
  race = factor(ifelse(d$black == 1, "black", ifelse(d$hisp == 1, "hispan", "white")),
                levels = c("black", "hispan", "white")),
  married = d$marr, nodegree = d$nodegree,
  re74 = d$re74, re75 = d$re75, re78 = d$re78)
nsw_m <- to_matchit(nsw)
cps_m <- to_matchit(cps)

key <- function(d) do.call(paste, c(d, sep = "|"))
ctrl <- lalonde[lalonde$treat == 0, ]
pos <- match(key(ctrl), key(cps_m))            # first exact match, 1-based
stopifnot(!anyNA(pos))
cat("controls with more than one identical cps_mixtape row:",
    sum(sapply(key(ctrl), function(k) sum(key(cps_m) == k)) > 1), "\n")

rebuilt <- rbind(nsw_m[nsw_m$treat == 1, ], cps_m[pos, ])
rownames(rebuilt) <- rownames(lalonde)
stopifnot(isTRUE(all.equal(rebuilt, lalonde, tolerance = 0)))
cat("rebuilt data identical to MatchIt lalonde:", identical(rebuilt, lalonde), "\n")

write_json_full(list(
  note = paste("lalonde = nsw_mixtape[treat == 1] (185 rows, in order) followed by",
               "cps_mixtape.iloc[cps_mixtape_rows_0based] (429 rows); recode black/hisp",
               "-> race, marr -> married; earnings float32 -> str -> float64"),
  nsw_mixtape_treated_rows_0based = which(nsw$treat == 1) - 1L,
  cps_mixtape_rows_0based = pos - 1L
), "tests/reference/lalonde_causaldata_rows.json")
