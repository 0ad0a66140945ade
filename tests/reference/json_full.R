# write_json_full(x, path): jsonlite::write_json with doubles written so that
# they round-trip exactly.
#
# Debian's jsonlite 1.8.4 caps numbers at 15 significant digits whatever
# `digits` says (digits = NA, 17 and I(17) all give "%.15g"), so doubles are
# formatted here with the shortest of %.15g / %.16g / %.17g that parses back to
# the same double, and handed to jsonlite verbatim.
#
# Conventions of the JSON written:
#  * a length-1 vector is a scalar, unless wrapped in I() (then a 1-element array);
#  * a matrix is an array of rows;
#  * a data frame is an object of columns;
#  * NA / NaN / Inf and NULL are written as null.

library(jsonlite)

fmt_double <- function(x) {
  s <- rep("null", length(x))
  ok <- is.finite(x)
  s[ok] <- sprintf("%.15g", x[ok])
  for (d in 16:17) {
    bad <- ok & suppressWarnings(as.numeric(s)) != x
    bad[is.na(bad)] <- FALSE
    s[bad] <- sprintf(paste0("%.", d, "g"), x[bad])
  }
  s
}

full_precision <- function(x) {
  if (is.null(x)) return(NULL)
  if (is.data.frame(x)) return(lapply(as.list(x), full_precision))
  if (is.factor(x)) x <- as.character(x)
  if (is.list(x)) {
    out <- lapply(x, full_precision)
    return(if (is.null(names(x))) out else setNames(out, names(x)))
  }
  if (!is.double(x)) return(x)
  s <- fmt_double(as.vector(x))
  if (is.matrix(x)) {
    s <- matrix(s, nrow(x), ncol(x))
    rows <- apply(s, 1, function(r) paste0("[", paste(r, collapse = ","), "]"))
    js <- paste0("[", paste(rows, collapse = ","), "]")
  } else if (length(s) == 1 && !inherits(x, "AsIs")) {
    js <- s
  } else {
    js <- paste0("[", paste(s, collapse = ","), "]")
  }
  structure(js, class = "json")
}

write_json_full <- function(x, path) {
  txt <- toJSON(full_precision(x), json_verbatim = TRUE, auto_unbox = TRUE,
                na = "null", null = "null", pretty = TRUE, digits = NA)
  writeLines(txt, path)
}
