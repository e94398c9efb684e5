"""The application layer: one function per command, called by every face.

`app.commands` (crea, collega, modelli, valida, importa, consolida, documento,
master_vuoto, modello_vuoto), `app.posta` (invia, solleciti, esiti), `app.stato` (stato).
The command line, the Excel buttons and ``import piano_abitativo`` call these and nothing
below them; nothing is re-exported here, so that a function never hides a module.
"""
