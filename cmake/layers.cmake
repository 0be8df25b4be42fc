# The dependency rule of README.md's Layout section (tests/layout/check_layers.py): every folder
# of src/ and every public header includes only its own layer and the layers below it, and the
# LibTorch-free binaries (the runtime library, leanseg-infer) link neither LibTorch nor OpenCV.
if(EXISTS /usr/bin/python3 AND NOT Python3_EXECUTABLE)
  set(Python3_EXECUTABLE /usr/bin/python3)
endif()
find_package(Python3 COMPONENTS Interpreter)
if(Python3_Interpreter_FOUND)
  add_test(NAME Layout.IncludesFollowTheLayerOrder
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/tests/layout/check_layers.py
                   --root ${CMAKE_CURRENT_SOURCE_DIR})
  find_program(LEANSEG_READELF NAMES readelf)
  if(LEANSEG_READELF)
    add_test(NAME Layout.RuntimeLinksNeitherLibTorchNorOpenCV
             COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/tests/layout/check_layers.py
                     --root ${CMAKE_CURRENT_SOURCE_DIR}
                     --no-link-deps $<TARGET_FILE:leanseg_runtime> $<TARGET_FILE:leanseg_infer>)
  endif()
endif()
