@echo off
rem One click from a fresh clone to a comparison report on Windows: virtual environment, install,
rem dataset, train the CNN, ResNet18 and MobileNetV3, compare them. Every step is a call of emoclf.
rem
rem Usage: run_pipeline.bat [SOURCE] [--quick] [--no-install] [--overwrite] [--force] [--device D]
rem                         [--set "SECTION.KEY=VALUE" ...]
rem   Quote every --set value: cmd.exe splits unquoted arguments at "=".
rem   --overwrite and --device go to emoclf compare, --force to emoclf download (see run_pipeline.sh --help).
rem Offline: download the dataset in a browser, then run_pipeline.bat path\to\archive.zip --set "model.pretrained=false"
rem Environment variables, as in run_pipeline.sh: EMOCLF_SOURCE, EMOCLF_DATA_ROOT (skip the download; an archive
rem   there is installed like SOURCE), EMOCLF_TORCH_INDEX (a pip index for torch, e.g. the CPU-only build),
rem   EMOCLF_DATA, EMOCLF_SET (space-separated SECTION.KEY=VALUE), EMOCLF_OUTPUTS, EMOCLF_VENV, PYTHON,
rem   EMOCLF_PYTHON (with --no-install), EMOCLF_CONFIGS, EMOCLF_COMPARISON, QUICK=1.
setlocal EnableExtensions EnableDelayedExpansion

set "STEP=start"
set "SOURCE=%EMOCLF_SOURCE%"
set "QUICKMODE=%QUICK%"
set "INSTALL=1"
set "SETS="
set "COMPARE_ARGS="
set "DOWNLOAD_ARGS="
if not defined EMOCLF_SCRIPT_NAME set "EMOCLF_SCRIPT_NAME=%~nx0"

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
if /i "%~1"=="--overwrite" (
  set "COMPARE_ARGS=!COMPARE_ARGS! --overwrite"
  shift
  goto parse
)
if /i "%~1"=="--force" (
  set "DOWNLOAD_ARGS=--force"
  shift
  goto parse
)
if /i "%~1"=="--device" (
  if "%~2"=="" (
    echo run_pipeline.bat: --device needs a value: cpu, cuda, mps 1>&2
    exit /b 2
  )
  set COMPARE_ARGS=!COMPARE_ARGS! --device "%~2"
  shift
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
set "ARG=%~1"
if "!ARG:~0,1!"=="-" (
  echo run_pipeline.bat: unknown option %~1 - see --help 1>&2
  exit /b 2
)
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
if defined DATA_ROOT if not exist "!DATA_ROOT!\" if exist "!DATA_ROOT!" if not defined SOURCE (
  echo ==^> EMOCLF_DATA_ROOT is a file: installing it as the dataset archive
  set "SOURCE=!DATA_ROOT!"
  set "DATA_ROOT="
)
if defined DATA_ROOT if not exist "!DATA_ROOT!\" (
  echo run_pipeline.bat: EMOCLF_DATA_ROOT=%EMOCLF_DATA_ROOT% is not a folder. Point it at a dataset folder with train\ and validation\ class folders, pass an archive as the first argument ^(%EMOCLF_SCRIPT_NAME% path\to\archive.zip^), or leave it unset to download the dataset. 1>&2
  exit /b 2
)
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
rem pip runs only when pyproject.toml changed since the last install into this environment (a stamp records it).
set "WANT="
for /f "usebackq delims=" %%h in (`""%PY%" -c "import hashlib, os; print(hashlib.sha256(open('pyproject.toml', 'rb').read()).hexdigest(), os.getcwd())""`) do set "WANT=%%h"
set "HAVE="
if exist "%EMOCLF_VENV%\.emoclf-installed" set /p HAVE=<"%EMOCLF_VENV%\.emoclf-installed"
if defined WANT if "!HAVE!"=="!WANT!" "%PY%" -c "import emoclf, torch, torchvision" 2>nul && (
  echo ==^> emoclf is installed in %EMOCLF_VENV% and pyproject.toml is unchanged: no pip run
  goto download
)
"%PY%" -c "import torch, torchvision" 2>nul && (
  echo ==^> Installing emoclf into %EMOCLF_VENV% - the installed torch is kept; about a minute
) || (
  echo ==^> Installing emoclf and its dependencies into %EMOCLF_VENV%. pip downloads torch first: about 1 GB as the
  echo     CPU-only build; allow 5-20 minutes.
  if defined EMOCLF_TORCH_INDEX "%PY%" -m pip install --quiet --disable-pip-version-check torch torchvision --index-url "%EMOCLF_TORCH_INDEX%"
)
"%PY%" -m pip install --quiet --disable-pip-version-check --upgrade pip
if errorlevel 1 goto fail
"%PY%" -m pip install --quiet --disable-pip-version-check -e .
if errorlevel 1 goto fail
if defined WANT (echo !WANT!)>"%EMOCLF_VENV%\.emoclf-installed"
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
  "!PY!" -m emoclf download --source "!SOURCE!" --dest "!DATA_ROOT!" %DOWNLOAD_ARGS%
) else (
  "!PY!" -m emoclf download --dest "!DATA_ROOT!" %DOWNLOAD_ARGS%
)
if errorlevel 1 (
  set "RC=!ERRORLEVEL!"
  echo %EMOCLF_SCRIPT_NAME%: stopped at step "download" ^(exit code !RC!^); see the message above. 1>&2
  echo   Without internet: download the file in a browser ^(the page is named above^), then run 1>&2
  echo     %EMOCLF_SCRIPT_NAME% path\to\archive.zip --set "model.pretrained=false" 1>&2
  echo   ^(ImageNet weights need the internet too; false trains ResNet18 and MobileNetV3 from scratch^). 1>&2
  exit /b !RC!
)

:train
set "QUICKSETS="
if "%QUICKMODE%"=="1" (
  echo ==^> Quick mode: 1 epoch, 32-pixel inputs, every model from scratch - works offline; a smoke run, not a result
  set QUICKSETS=--set "train.epochs=1" --set "data.image_size=32" --set "model.width=8" --set "model.depth=2" --set "train.batch_size=32" --set "model.pretrained=false"
)
set "STEP=train and compare"
echo ==^> Training what is missing and comparing: %CONFIGS%
"%PY%" -m emoclf compare --config %CONFIGS% --set "data.root=%DATA_ROOT%" --set "output.dir=%OUT%" %QUICKSETS% !SETS! !COMPARE_ARGS! --out "%OUT%\%COMPARISON%"
if errorlevel 1 goto fail

echo ==^> Done. Report: %OUT%\%COMPARISON%\comparison.md
echo     Try it on a photo: "%PY%" -m emoclf predict PHOTO.jpg --haar --runs-dir "%OUT%"
exit /b 0

:fail
set "RC=%ERRORLEVEL%"
echo run_pipeline.bat: stopped at step "%STEP%" (exit code %RC%); see the message above. 1>&2
exit /b %RC%
