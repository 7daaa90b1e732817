@echo off
rem One click from a fresh clone to a comparison report on Windows: virtual environment, install,
rem dataset, train the CNN, ResNet18 and MobileNetV3, compare them. Every step is a call of emoclf.
rem
rem Usage: run_pipeline.bat [SOURCE] [--quick] [--no-install] [--set "SECTION.KEY=VALUE" ...]
rem   Quote every --set value: cmd.exe splits unquoted arguments at "=".
rem Environment variables, as in run_pipeline.sh: EMOCLF_SOURCE, EMOCLF_DATA_ROOT (skip the download),
rem   EMOCLF_DATA, EMOCLF_SET (space-separated SECTION.KEY=VALUE), EMOCLF_OUTPUTS, EMOCLF_VENV, PYTHON,
rem   EMOCLF_PYTHON (with --no-install), EMOCLF_CONFIGS, EMOCLF_COMPARISON, QUICK=1.
setlocal EnableExtensions EnableDelayedExpansion

set "STEP=start"
set "SOURCE=%EMOCLF_SOURCE%"
set "QUICKMODE=%QUICK%"
set "INSTALL=1"
set "SETS="

:parse
if "%~1"=="" goto parsed
if /i "%~1"=="--quick" (
  set "QUICKMODE=1"
  shift
  goto parse
)
if /i "%~1"=="--no-install" (
  set "INSTALL=0"
  shift
  goto parse
)
if /i "%~1"=="--set" (
  if "%~2"=="" (
    echo run_pipeline.bat: --set needs "SECTION.KEY=VALUE" 1>&2
    exit /b 2
  )
  set SETS=!SETS! --set "%~2"
  shift
  shift
  goto parse
)
if /i "%~1"=="--help" goto usage
if /i "%~1"=="-h" goto usage
set "SOURCE=%~1"
shift
goto parse

:usage
findstr /b /c:"rem" "%~f0"
exit /b 0

:parsed
if defined EMOCLF_SET for %%s in ("%EMOCLF_SET: =" "%") do set SETS=!SETS! --set "%%~s"

rem Paths given by the caller are relative to the folder the script was called from.
if "%QUICKMODE%"=="1" (set "OUT=outputs\quick") else (set "OUT=outputs")
if defined EMOCLF_OUTPUTS for %%p in ("%EMOCLF_OUTPUTS%") do set "OUT=%%~fp"
set "DATA=data"
if defined EMOCLF_DATA for %%p in ("%EMOCLF_DATA%") do set "DATA=%%~fp"
set "DATA_ROOT="
if defined EMOCLF_DATA_ROOT for %%p in ("%EMOCLF_DATA_ROOT%") do set "DATA_ROOT=%%~fp"
if defined SOURCE if exist "!SOURCE!" for %%p in ("!SOURCE!") do set "SOURCE=%%~fp"
set "CONFIGS="
if defined EMOCLF_CONFIGS for %%c in (%EMOCLF_CONFIGS%) do (
  if exist "%%~c" (set CONFIGS=!CONFIGS! "%%~fc") else (set CONFIGS=!CONFIGS! "%%~c")
)
if not defined CONFIGS set CONFIGS="configs\cnn.yaml" "configs\resnet18.yaml" "configs\mobilenet_v3.yaml"
set "COMPARISON=%EMOCLF_COMPARISON%"
if not defined COMPARISON set "COMPARISON=comparison"
cd /d "%~dp0"

if not "%INSTALL%"=="1" goto noinstall
set "STEP=virtual environment"
if not defined EMOCLF_VENV set "EMOCLF_VENV=.venv"
if exist "%EMOCLF_VENV%\Scripts\python.exe" goto venvready
echo ==^> Creating the virtual environment %EMOCLF_VENV%
if defined PYTHON (
  "!PYTHON!" -m venv "!EMOCLF_VENV!"
) else (
  py -3 -m venv "!EMOCLF_VENV!" || python -m venv "!EMOCLF_VENV!"
)
if errorlevel 1 goto fail
:venvready
set "PY=%EMOCLF_VENV%\Scripts\python.exe"
set "STEP=install"
echo ==^> Installing emoclf into %EMOCLF_VENV% - an installed torch is kept
"%PY%" -m pip install --quiet --upgrade pip
if errorlevel 1 goto fail
"%PY%" -m pip install --quiet -e .
if errorlevel 1 goto fail
goto download

:noinstall
set "PY=python"
if defined EMOCLF_PYTHON set "PY=%EMOCLF_PYTHON%"

:download
if defined DATA_ROOT (
  echo ==^> Using the dataset in !DATA_ROOT! - no download
  goto train
)
set "STEP=download"
set "DATA_ROOT=%DATA%"
echo ==^> Getting the dataset into %DATA_ROOT%
if defined SOURCE (
  "!PY!" -m emoclf download --source "!SOURCE!" --dest "!DATA_ROOT!"
) else (
  "!PY!" -m emoclf download --dest "!DATA_ROOT!"
)
if errorlevel 1 goto fail

:train
set "QUICKSETS="
if "%QUICKMODE%"=="1" (
  echo ==^> Quick mode: 1 epoch, 32-pixel inputs - a smoke run, not a result
  set QUICKSETS=--set "train.epochs=1" --set "data.image_size=32" --set "model.width=8" --set "model.depth=2" --set "train.batch_size=32"
)
set "STEP=train and compare"
echo ==^> Training what is missing and comparing: %CONFIGS%
"%PY%" -m emoclf compare --config %CONFIGS% --set "data.root=%DATA_ROOT%" --set "output.dir=%OUT%" %QUICKSETS% !SETS! --out "%OUT%\%COMPARISON%"
if errorlevel 1 goto fail

echo ==^> Done. Report: %OUT%\%COMPARISON%\comparison.md
echo     Try it on a photo: "%PY%" -m emoclf predict PHOTO.jpg --haar --runs-dir "%OUT%"
exit /b 0

:fail
set "RC=%ERRORLEVEL%"
echo run_pipeline.bat: stopped at step "%STEP%" (exit code %RC%); see the message above. 1>&2
exit /b %RC%
