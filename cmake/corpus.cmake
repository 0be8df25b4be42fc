# The malformed-input corpus (issue 17): tests/corpus/make_corpus.py generates every case (no
# binary files are committed) and tests/corpus/run_corpus.py runs each through the real
# executables, checking the exit code, that no signal ended the process, and the error text.
if(TARGET leanseg_cli)
  if(EXISTS /usr/bin/python3 AND NOT Python3_EXECUTABLE)
    set(Python3_EXECUTABLE /usr/bin/python3)  # Debian's, with python3-numpy (scripts/setup.sh)
  endif()
  find_package(Python3 COMPONENTS Interpreter)
  if(Python3_Interpreter_FOUND)
    add_test(NAME Corpus.MalformedInputs
             COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/tests/corpus/run_corpus.py
                     --leanseg $<TARGET_FILE:leanseg_cli> --infer $<TARGET_FILE:leanseg_infer>
                     --work ${CMAKE_CURRENT_BINARY_DIR}/corpus)
    set_tests_properties(Corpus.MalformedInputs PROPERTIES TIMEOUT 600 ENVIRONMENT "OMP_NUM_THREADS=2")
  endif()
endif()
