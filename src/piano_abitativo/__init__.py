"""piano-abitativo: raccolta dei dati del Piano annuale dell'offerta abitativa pubblica
e sociale (L.R. Lombardia 16/2016, R.R. 4/2017 art. 4)."""

__version__ = "0.1.0"
