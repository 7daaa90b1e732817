@echo off
rem ResNet18 against MobileNetV3 on Windows: the steps and options of run_pipeline.bat with these two
rem configs; finished runs of run_pipeline.bat are reused, not retrained.
rem Usage: run_comparison.bat [SOURCE] [--quick] [--no-install] [--overwrite] [--force] [--device D]
rem                           [--set "SECTION.KEY=VALUE" ...]
setlocal
if not defined EMOCLF_SCRIPT_NAME set "EMOCLF_SCRIPT_NAME=%~nx0"
if not defined EMOCLF_CONFIGS set "EMOCLF_CONFIGS=configs\resnet18.yaml configs\mobilenet_v3.yaml"
if not defined EMOCLF_COMPARISON set "EMOCLF_COMPARISON=comparison_resnet18_vs_mobilenet_v3"
call "%~dp0run_pipeline.bat" %*
exit /b %ERRORLEVEL%
