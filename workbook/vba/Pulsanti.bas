Attribute VB_Name = "Pulsanti"
' Pulsanti della cartella di lavoro riepilogativa di piano-abitativo.
' Ogni macro esegue una funzione Python con xlwings (RunPython, modulo xlwings).
' File generato da piano-abitativo: non modificarlo a mano.
Option Explicit

Sub Importa()
    RunPython "import piano_abitativo.excel as x; x.importa()"
End Sub

Sub Valida()
    RunPython "import piano_abitativo.excel as x; x.valida()"
End Sub

Sub Consolida()
    RunPython "import piano_abitativo.excel as x; x.consolida()"
End Sub

Sub GeneraModelli()
    RunPython "import piano_abitativo.excel as x; x.genera_modelli()"
End Sub

Sub Solleciti()
    RunPython "import piano_abitativo.excel as x; x.solleciti()"
End Sub

Sub Documento()
    RunPython "import piano_abitativo.excel as x; x.documento()"
End Sub
